/* The plugin ABI: a plugin is a shared module exporting exactly one
 * symbol, MODIKE_PLUGIN_SYMBOL, returning a const versioned descriptor. */
#pragma once

#include <glib.h>
#include <gmodule.h>

G_BEGIN_DECLS

#define MODIKE_ABI_MAJOR 1  /* incompatible changes */
/* Additions; structs grow append-only. 1.1: ModikeSaStats.last_us; 1.2 to
 * 1.4: the calls, flags and fields marked "ABI 1.2" ... "ABI 1.4" in these headers. */
#define MODIKE_ABI_MINOR 4

typedef struct _ModikePlugin ModikePlugin; /* a loaded plugin, as the core sees it */

typedef struct {
  guint32 abi_major;
  guint32 abi_minor;
  gsize struct_size;                 /* sizeof (ModikePluginDescriptor) when built */
  const char *name;                  /* "natt": matches the config's plugin name */
  const char *version;
  const char *description;
  const char *const *provides;       /* NULL-terminated feature names, may be NULL */
  const char *const *depends;        /* NULL-terminated plugin names, may be NULL */
  /* Registers everything through the registry calls. On FALSE the loader
   * undoes every registration of this plugin and refuses to start. */
  gboolean (*init) (ModikePlugin *plugin, GError **error);
  void (*fini) (ModikePlugin *plugin);  /* may be NULL; registrations are undone by the core */
} ModikePluginDescriptor;

#define MODIKE_PLUGIN_SYMBOL "modike_plugin_descriptor"
typedef const ModikePluginDescriptor *(*ModikePluginEntry) (void);

/* In a plugin: MODIKE_PLUGIN_DEFINE (natt_descriptor) exports the entry. */
#define MODIKE_PLUGIN_DEFINE(desc)                                        \
  G_MODULE_EXPORT const ModikePluginDescriptor *modike_plugin_descriptor (void); \
  G_MODULE_EXPORT const ModikePluginDescriptor *modike_plugin_descriptor (void) { return &(desc); }

#define MODIKE_PLUGIN_DESCRIPTOR_INIT                                     \
  .abi_major = MODIKE_ABI_MAJOR, .abi_minor = MODIKE_ABI_MINOR,           \
  .struct_size = sizeof (ModikePluginDescriptor)

const char *modike_plugin_get_name (const ModikePlugin *plugin);
/* ABI 1.3: TRUE while the configuration is only being checked (modiked
 * --check, perhaps next to a running modiked): a config section's apply
 * validates everything but opens no database, takes no lock and restores
 * nothing. */
gboolean modike_plugin_is_check_only (const ModikePlugin *plugin);
/* Per-plugin state, freed with `destroy` after fini. */
void modike_plugin_set_data (ModikePlugin *plugin, gpointer data, GDestroyNotify destroy);
gpointer modike_plugin_get_data (const ModikePlugin *plugin);

G_END_DECLS
