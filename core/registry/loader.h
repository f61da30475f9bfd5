/* Plugin loading (GModule) in dependency order (not part of the SDK). */
#pragma once

#include "registry-private.h"

G_BEGIN_DECLS

#define MODIKE_LOADER_ERROR (modike_loader_error_quark ())
GQuark modike_loader_error_quark (void);
typedef enum {
  MODIKE_LOADER_ERROR_NOT_FOUND,     /* no such plugin file */
  MODIKE_LOADER_ERROR_BAD_MODULE,    /* not a module, or no entry symbol */
  MODIKE_LOADER_ERROR_ABI,           /* ABI major differs, minor newer, struct too small */
  MODIKE_LOADER_ERROR_DEPENDENCY,    /* missing dependency or a cycle */
  MODIKE_LOADER_ERROR_CONFLICT,      /* a registration conflict (see registry.h) */
  MODIKE_LOADER_ERROR_INIT,          /* the plugin's init failed */
  MODIKE_LOADER_ERROR_DUPLICATE,     /* listed twice or same name */
} ModikeLoaderError;

typedef struct _ModikeLoader ModikeLoader;
ModikeLoader *modike_loader_new (ModikeRegistry *reg, const char *plugin_dir);
/* Descriptors linked in (tests, static builds) found before the directory. */
void modike_loader_add_static (ModikeLoader *l, const ModikePluginDescriptor *desc);
/* Loads exactly these plugins (and nothing else) in dependency order. On any
 * error everything loaded by this call is unloaded again and the error names
 * the plugin and the cause. */
gboolean modike_loader_load (ModikeLoader *l, const char *const *names, GError **error);
/* Unloads in reverse order (fini, registrations undone, module closed). */
void modike_loader_unload_all (ModikeLoader *l);
void modike_loader_free (ModikeLoader *l);
/* Names in load order (borrowed). */
GPtrArray *modike_loader_loaded (const ModikeLoader *l);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeLoader, modike_loader_free)

G_END_DECLS
