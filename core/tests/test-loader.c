/* Suite loader: the registry's claims and queries, and the GModule loader
 * against the test plugins of plugins/ (one source, many behaviours).
 * Every refusal must name the plugin and the cause and leave the registry
 * exactly as it was before the call. */
#include <gmodule.h>
#include <modike/modike.h>
#include <string.h>

#include "loader.h"

/* ---- Trace: the test plugins report init/fini/free/apply/event here ---- */

static GString *trace;

G_MODULE_EXPORT void tp_trace (const char *what, const char *name);

G_MODULE_EXPORT void
tp_trace (const char *what, const char *name)
{
  g_string_append_printf (trace, "%s:%s ", what, name);
}

static void
assert_trace (const char *expected)
{
  g_assert_cmpstr (trace->str, ==, expected);
  g_string_truncate (trace, 0);
}

/* ---- Fixture ---- */

typedef struct {
  ModikeRegistry *reg;
  ModikeLoader *loader;
  const char *dir;
} Fixture;

static const char *
plugin_dir (void)
{
  const char *dir = g_getenv ("MODIKE_TEST_PLUGIN_DIR");

  /* A missing prerequisite fails; it is never a skip. */
  g_assert_nonnull (dir);
  g_assert_true (g_file_test (dir, G_FILE_TEST_IS_DIR));
  return dir;
}

static void
fixture_setup (Fixture *fx, gconstpointer data)
{
  fx->dir = plugin_dir ();
  fx->reg = modike_registry_new ();
  fx->loader = modike_loader_new (fx->reg, fx->dir);
  g_string_truncate (trace, 0);
}

static void
fixture_teardown (Fixture *fx, gconstpointer data)
{
  modike_loader_free (fx->loader);
  modike_registry_free (fx->reg);
}

static char *
loaded_names (Fixture *fx)
{
  GPtrArray *names = modike_loader_loaded (fx->loader);
  g_autoptr (GPtrArray) copy = g_ptr_array_copy (names, NULL, NULL);

  g_ptr_array_add (copy, NULL);
  return g_strjoinv (" ", (char **) copy->pdata);
}

static void
load_ok (Fixture *fx, const char *const *names)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (modike_loader_load (fx->loader, names, &error));
  g_assert_no_error (error);
}

/* Loads `names`, which must fail with `code` and a message containing
 * "plugin '<culprit>'" and every cause string; then checks that the
 * registry and the loaded list are exactly as before. */
static void
load_refused (Fixture *fx, const char *const *names, ModikeLoaderError code, const char *culprit,
              const char *cause1, const char *cause2)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *before = modike_registry_describe (fx->reg);
  g_autofree char *loaded_before = loaded_names (fx);
  g_autofree char *after = NULL;
  g_autofree char *loaded_after = NULL;
  g_autofree char *who = g_strdup_printf ("plugin '%s'", culprit);

  g_assert_false (modike_loader_load (fx->loader, names, &error));
  g_assert_error (error, MODIKE_LOADER_ERROR, (gint) code);
  g_test_message ("refused: %s", error->message);
  g_assert_true (g_str_has_prefix (error->message, who));
  g_assert_nonnull (strstr (error->message, cause1));
  if (cause2 != NULL)
    g_assert_nonnull (strstr (error->message, cause2));

  after = modike_registry_describe (fx->reg);
  loaded_after = loaded_names (fx);
  g_assert_cmpstr (after, ==, before);
  g_assert_cmpstr (loaded_after, ==, loaded_before);
}

#define NAMES(...) ((const char *const[]) { __VA_ARGS__, NULL })

/* ---- Loading in order ---- */

static void
test_order (Fixture *fx, gconstpointer data)
{
  g_autofree char *empty = modike_registry_describe (fx->reg);
  g_autofree char *order = NULL;
  g_autofree char *full = NULL;
  g_autofree char *after = NULL;

  g_assert_cmpstr (empty, ==, "plugin core\n");
  /* top needs mid and base, mid needs base; solo and base are ready first
   * and keep their config order. */
  load_ok (fx, NAMES ("top", "solo", "mid", "base"));
  order = loaded_names (fx);
  g_assert_cmpstr (order, ==, "solo base mid top");
  assert_trace ("init:solo init:base init:mid init:top ");

  full = modike_registry_describe (fx->reg);
  g_assert_nonnull (strstr (full, "exchange 200 (TestEx) by base\n"));
  g_assert_nonnull (strstr (full, "port 4601 flags 0x0 by solo\n"));
  g_assert_nonnull (strstr (full, "event 0 by mid\n"));

  modike_loader_unload_all (fx->loader);
  assert_trace ("fini:top free:top fini:mid free:mid fini:base free:base fini:solo free:solo ");
  after = modike_registry_describe (fx->reg);
  g_assert_cmpstr (after, ==, empty);
  g_assert_cmpuint (modike_loader_loaded (fx->loader)->len, ==, 0);

  /* Loading again after unloading works (modules really closed and reopened). */
  load_ok (fx, NAMES ("base"));
  assert_trace ("init:base ");
}

static void
test_second_call (Fixture *fx, gconstpointer data)
{
  g_autofree char *order = NULL;

  /* Dependencies may already be loaded by an earlier call. */
  load_ok (fx, NAMES ("base"));
  load_ok (fx, NAMES ("top", "mid"));
  order = loaded_names (fx);
  g_assert_cmpstr (order, ==, "base mid top");
  assert_trace ("init:base init:mid init:top ");
}

/* ---- What a loaded plugin registered, through the core's queries ---- */

static void
test_queries (Fixture *fx, gconstpointer data)
{
  const ModikeFsmRow *row;
  GPtrArray *claims;
  g_autoptr (GPtrArray) rows = NULL;
  g_autoptr (GPtrArray) vids = NULL;
  g_autoptr (GHashTable) fragments = NULL;
  g_autoptr (GArray) ports = NULL;
  g_autoptr (GError) error = NULL;
  const ModikeVendorIdReg *vid;
  const ModikeDatapathOps *dp;
  ModikeNotifyFunc nfn = NULL;
  gpointer user = NULL;
  static const guint8 tvid[] = "modike-test-vid";

  load_ok (fx, NAMES ("base"));
  g_string_truncate (trace, 0);

  g_assert_true (modike_registry_has_exchange (fx->reg, 200));
  g_assert_false (modike_registry_has_exchange (fx->reg, 201));
  row = modike_registry_find_row (fx->reg, 200, 0, 1, MODIKE_ROLE_RESPONDER);
  g_assert_nonnull (row);
  g_assert_cmpstr (row->name, ==, "TP_R1");
  row = modike_registry_find_row (fx->reg, 200, 0, 0, MODIKE_ROLE_INITIATOR);
  g_assert_nonnull (row);
  g_assert_cmpstr (row->name, ==, "TP_I0");
  g_assert_true (row->flags & MODIKE_ROW_INITIATE);
  row = modike_registry_find_row (fx->reg, 200, 2, 3, MODIKE_ROLE_RESPONDER);
  g_assert_nonnull (row);
  g_assert_cmpstr (row->name, ==, "TP_R2");
  g_assert_null (modike_registry_find_row (fx->reg, 200, 0, 1, MODIKE_ROLE_INITIATOR));
  g_assert_null (modike_registry_find_row (fx->reg, 200, 1, 1, MODIKE_ROLE_RESPONDER));
  g_assert_null (modike_registry_find_row (fx->reg, 200, 0, 2, MODIKE_ROLE_RESPONDER));
  g_assert_null (modike_registry_find_row (fx->reg, 2, 0, 1, MODIKE_ROLE_RESPONDER));
  rows = modike_registry_rows (fx->reg);
  g_assert_cmpuint (rows->len, ==, 4);
  g_assert_true (modike_registry_check_table (fx->reg, &error));
  g_assert_no_error (error);

  claims = modike_registry_payloads_at (fx->reg, 200, 1);
  g_assert_cmpuint (claims->len, ==, 1);
  g_assert_cmpuint (((ModikePayloadClaim *) claims->pdata[0])->type, ==, 150);
  g_assert_cmpuint (((ModikePayloadClaim *) claims->pdata[0])->max_count, ==, 2);
  g_assert_cmpstr (modike_plugin_get_name (((ModikePayloadClaim *) claims->pdata[0])->owner), ==, "base");
  g_assert_cmpuint (modike_registry_payloads_at (fx->reg, 2, 3)->len, ==, 1);
  g_assert_cmpuint (modike_registry_payloads_at (fx->reg, 200, 2)->len, ==, 0);
  g_assert_cmpuint (modike_registry_builders_at (fx->reg, 200, 2)->len, ==, 1);
  g_assert_cmpuint (modike_registry_builders_at (fx->reg, 200, 1)->len, ==, 0);

  vids = modike_registry_vendor_ids (fx->reg);
  g_assert_cmpuint (vids->len, ==, 1);
  vid = modike_registry_match_vendor_id (fx->reg, tvid, sizeof tvid - 1);
  g_assert_nonnull (vid);
  g_assert_cmpstr (vid->name, ==, "test");
  g_assert_true (vid->flags & MODIKE_VID_SEND);
  g_assert_null (modike_registry_match_vendor_id (fx->reg, tvid, sizeof tvid - 2));
  g_assert_null (modike_registry_match_vendor_id (fx->reg, tvid, sizeof tvid));  /* with the NUL: longer */

  g_assert_true (modike_registry_notify (fx->reg, 40000, &nfn, &user));
  g_assert_nonnull (nfn);
  g_assert_false (modike_registry_notify (fx->reg, 40001, &nfn, &user));

  fragments = modike_registry_config_fragments (fx->reg);
  g_assert_cmpuint (g_hash_table_size (fragments), ==, 1);
  g_assert_nonnull (strstr (g_hash_table_lookup (fragments, "tpsection"), "<element name=\"tpsection\""));

  ports = modike_registry_ports (fx->reg);
  g_assert_cmpuint (ports->len, ==, 1);
  g_assert_cmpuint (g_array_index (ports, guint32, 0), ==, 4600 | MODIKE_PORT_NON_ESP_MARKER << 16);

  g_assert_nonnull (modike_registry_encap (fx->reg, &user));
  dp = modike_registry_datapath (fx->reg, &user);
  g_assert_nonnull (dp);
  g_assert_cmpstr (dp->name, ==, "tp-datapath");
  g_assert_cmpstr (modike_registry_os_adapter (fx->reg, &user)->name, ==, "tp-os");

  modike_registry_emit (fx->reg, MODIKE_EVENT_P1_UP, NULL, NULL);
  assert_trace ("event:base ");
  modike_registry_emit (fx->reg, MODIKE_EVENT_P2_UP, NULL, NULL);
  assert_trace ("");

  /* After unloading nothing of it answers. */
  modike_loader_unload_all (fx->loader);
  g_string_truncate (trace, 0);
  g_assert_null (modike_registry_find_row (fx->reg, 200, 0, 1, MODIKE_ROLE_RESPONDER));
  g_assert_cmpuint (modike_registry_payloads_at (fx->reg, 200, 1)->len, ==, 0);
  g_assert_cmpuint (modike_registry_builders_at (fx->reg, 200, 2)->len, ==, 0);
  g_assert_null (modike_registry_match_vendor_id (fx->reg, tvid, sizeof tvid - 1));
  g_assert_false (modike_registry_notify (fx->reg, 40000, NULL, NULL));
  g_assert_null (modike_registry_encap (fx->reg, NULL));
  g_assert_null (modike_registry_datapath (fx->reg, NULL));
  g_assert_null (modike_registry_os_adapter (fx->reg, NULL));
  modike_registry_emit (fx->reg, MODIKE_EVENT_P1_UP, NULL, NULL);
  assert_trace ("");
}

/* ---- Refusals: resolving ---- */

static void
test_unknown (Fixture *fx, gconstpointer data)
{
  g_autofree char *where = g_strdup_printf ("not found in %s", fx->dir);

  load_refused (fx, NAMES ("solo", "nosuch"), MODIKE_LOADER_ERROR_NOT_FOUND, "nosuch", where, NULL);
  assert_trace ("");  /* nothing is inited before every plugin resolved */
}

static void
test_not_module (Fixture *fx, gconstpointer data)
{
  load_refused (fx, NAMES ("notmodule"), MODIKE_LOADER_ERROR_BAD_MODULE, "notmodule", "not a loadable module", "notmodule.so");
  load_refused (fx, NAMES ("solo", "nosym"), MODIKE_LOADER_ERROR_BAD_MODULE, "nosym",
                "does not export modike_plugin_descriptor", NULL);
  assert_trace ("");
}

static void
test_abi (Fixture *fx, gconstpointer data)
{
  g_autofree char *major = g_strdup_printf ("ABI %d.%d, this modiked speaks %d.%d", MODIKE_ABI_MAJOR + 1,
                                            MODIKE_ABI_MINOR, MODIKE_ABI_MAJOR, MODIKE_ABI_MINOR);
  g_autofree char *minor = g_strdup_printf ("ABI %d.%d, this modiked speaks %d.%d", MODIKE_ABI_MAJOR,
                                            MODIKE_ABI_MINOR + 1, MODIKE_ABI_MAJOR, MODIKE_ABI_MINOR);

  load_refused (fx, NAMES ("abimajor"), MODIKE_LOADER_ERROR_ABI, "abimajor", major, NULL);
  load_refused (fx, NAMES ("abiminor"), MODIKE_LOADER_ERROR_ABI, "abiminor", minor, NULL);
  load_refused (fx, NAMES ("smallstruct"), MODIKE_LOADER_ERROR_ABI, "smallstruct", "descriptor is", "needs at least");
  load_refused (fx, NAMES ("misnamed"), MODIKE_LOADER_ERROR_BAD_MODULE, "misnamed",
                "describes a plugin named 'other'", NULL);
  assert_trace ("");
}

static void
test_names (Fixture *fx, gconstpointer data)
{
  load_refused (fx, NAMES ("solo", "base", "solo"), MODIKE_LOADER_ERROR_DUPLICATE, "solo", "listed twice", NULL);
  load_refused (fx, NAMES ("../solo"), MODIKE_LOADER_ERROR_NOT_FOUND, "../solo", "not a valid plugin name", NULL);
  load_refused (fx, NAMES ("core"), MODIKE_LOADER_ERROR_DUPLICATE, "core", "reserved", NULL);
  load_ok (fx, NAMES ("solo"));
  load_refused (fx, NAMES ("base", "solo"), MODIKE_LOADER_ERROR_DUPLICATE, "solo", "already loaded", NULL);
  assert_trace ("init:solo ");
}

/* ---- Refusals: dependencies ---- */

static void
test_missing_dependency (Fixture *fx, gconstpointer data)
{
  load_refused (fx, NAMES ("solo", "needsghost"), MODIKE_LOADER_ERROR_DEPENDENCY, "needsghost",
                "depends on 'ghost', which is not in the plugin list", NULL);
  /* Never auto-loaded: mid needs base, which exists but is not listed. */
  load_refused (fx, NAMES ("mid"), MODIKE_LOADER_ERROR_DEPENDENCY, "mid",
                "depends on 'base', which is not in the plugin list", NULL);
  assert_trace ("");
}

static void
test_cycle (Fixture *fx, gconstpointer data)
{
  load_refused (fx, NAMES ("solo", "cyca", "cycb", "cycc"), MODIKE_LOADER_ERROR_DEPENDENCY, "cyca",
                "dependency cycle cyca -> cycb -> cycc -> cyca", NULL);
  load_refused (fx, NAMES ("cycself"), MODIKE_LOADER_ERROR_DEPENDENCY, "cycself",
                "dependency cycle cycself -> cycself", NULL);
  assert_trace ("");
}

/* ---- Refusals: conflicts ---- */

typedef struct {
  const char *plugin;
  const char *thing;
} Clash;

static const Clash clashes[] = {
  { "clashexchange", "claims exchange type 200 (TestEx) already claimed by 'base'" },
  { "clashpayload", "claims payload type 150 (unknown) already claimed by 'base'" },
  { "clashvid", "claims vendor ID 6d6f64696b652d746573742d766964 (test), overlapping 'test' already claimed by 'base'" },
  { "clashnotify", "claims notify type 40000 (unknown) already claimed by 'base'" },
  { "clashsection", "claims config section <tpsection> already claimed by 'base'" },
  { "clashport", "claims port 4600 already claimed by 'base'" },
  { "clashencap", "claims the encapsulation hook already claimed by 'base'" },
  { "clashdatapath", "claims the datapath already claimed by 'base'" },
  { "clashos", "claims the OS adapter already claimed by 'base'" },
  { "rowpayload", "claims payload type 10 (NONCE) at exchange 200 (TestEx) message 1, which row 'TP_R1' of 'base' "
                  "already lists" },
};

static void
test_conflicts_after_load (Fixture *fx, gconstpointer data)
{
  load_ok (fx, NAMES ("base"));
  g_string_truncate (trace, 0);

  for (gsize i = 0; i < G_N_ELEMENTS (clashes); i++)
    {
      g_autofree char *expected = g_strdup_printf ("init:solo init:%s free:%s fini:solo free:solo ",
                                                   clashes[i].plugin, clashes[i].plugin);

      /* solo inits first and must be undone too. */
      load_refused (fx, NAMES ("solo", clashes[i].plugin), MODIKE_LOADER_ERROR_CONFLICT, clashes[i].plugin,
                    clashes[i].thing, NULL);
      assert_trace (expected);
    }
}

static void
test_conflicts_same_call (Fixture *fx, gconstpointer data)
{
  for (gsize i = 0; i < G_N_ELEMENTS (clashes); i++)
    {
      g_autofree char *expected = g_strdup_printf ("init:base init:%s free:%s fini:base free:base ",
                                                   clashes[i].plugin, clashes[i].plugin);

      load_refused (fx, NAMES ("base", clashes[i].plugin), MODIKE_LOADER_ERROR_CONFLICT, clashes[i].plugin,
                    clashes[i].thing, NULL);
      assert_trace (expected);
      g_assert_cmpuint (modike_loader_loaded (fx->loader)->len, ==, 0);
    }
}

static void
test_ignored_refusal (Fixture *fx, gconstpointer data)
{
  load_ok (fx, NAMES ("base"));
  g_string_truncate (trace, 0);
  load_refused (fx, NAMES ("ignorer"), MODIKE_LOADER_ERROR_CONFLICT, "ignorer",
                "claims port 4600 already claimed by 'base'", "init ignored the refusal");
  /* init returned TRUE, so it gets its fini. */
  assert_trace ("init:ignorer fini:ignorer free:ignorer ");
}

/* ---- Refusals: init ---- */

static void
test_init_failure (Fixture *fx, gconstpointer data)
{
  load_refused (fx, NAMES ("solo", "failinit"), MODIKE_LOADER_ERROR_INIT, "failinit",
                "init failed: the test told it to fail", NULL);
  assert_trace ("init:solo init:failinit free:failinit fini:solo free:solo ");
  load_refused (fx, NAMES ("failsilent", "solo"), MODIKE_LOADER_ERROR_INIT, "failsilent",
                "init failed without giving a reason", NULL);
  assert_trace ("init:failsilent free:failsilent ");
  load_refused (fx, NAMES ("solo", "badrows"), MODIKE_LOADER_ERROR_INIT, "badrows",
                "exchange 201 (BadEx): row 'BAD_R1' goes to state 9, which no row starts from", NULL);
  assert_trace ("init:solo init:badrows free:badrows fini:solo free:solo ");
}

/* ---- Exports ---- */

static GHashTable *
defined_functions (const char *path)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) lines = NULL;
  const char *argv[] = { "nm", "-D", "--defined-only", path, NULL };
  GHashTable *syms = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  gint status = 0;

  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err, &status,
                               &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, &error));
  g_assert_no_error (error);
  lines = g_strsplit (out, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_auto (GStrv) f = g_strsplit_set (g_strstrip (lines[i]), " \t", -1);

      /* "<address> <type> <name>"; T/t/W/i are code. */
      if (g_strv_length (f) == 3 && strchr ("TtWi", f[1][0]) != NULL)
        g_hash_table_add (syms, g_strdup (f[2]));
    }
  return syms;
}

static void
test_exports (void)
{
  const char *dir = plugin_dir ();
  const char *list = g_getenv ("MODIKE_TEST_PLUGINS");
  g_auto (GStrv) names = NULL;
  g_autofree char *nosym = g_build_filename (dir, "nosym.so", NULL);
  g_autoptr (GHashTable) control = defined_functions (nosym);

  g_assert_nonnull (list);
  names = g_strsplit (list, " ", -1);
  g_assert_cmpuint (g_strv_length (names), >=, 20);
  for (guint i = 0; names[i] != NULL; i++)
    {
      g_autofree char *file = g_strconcat (names[i], ".so", NULL);
      g_autofree char *path = g_build_filename (dir, file, NULL);
      g_autoptr (GHashTable) syms = defined_functions (path);

      g_test_message ("%s: %u defined functions", file, g_hash_table_size (syms));
      g_assert_cmpuint (g_hash_table_size (syms), ==, 1);
      g_assert_true (g_hash_table_contains (syms, MODIKE_PLUGIN_SYMBOL));
    }
  /* The check sees functions when a module exports them (no version script). */
  g_assert_true (g_hash_table_contains (control, "tp_not_a_plugin"));
}

/* ---- Static descriptors and the core's own claims ---- */

/* MODIKE_PB calls modike_payload_bit (codec); types below 48 map to
 * themselves, which is all these constant tables need. */
#define PB(type) (G_GUINT64_CONSTANT (1) << (type))

static ModikeVerdict
core_handler (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  return MODIKE_V_OK;
}

static const ModikeFsmRow core_rows[] = {
  { .name = "C_I0", .exchange = MODIKE_EX_MAIN, .msg_no = 0, .role = MODIKE_ROLE_INITIATOR,
    .flags = MODIKE_ROW_INITIATE, .handler = core_handler, .next = 1 },
  { .name = "C_R1", .exchange = MODIKE_EX_MAIN, .msg_no = 1, .role = MODIKE_ROLE_RESPONDER,
    .flags = MODIKE_ROW_START, .required = PB (MODIKE_PL_SA), .optional = PB (MODIKE_PL_VID),
    .repeatable = PB (MODIKE_PL_VID), .handler = core_handler, .next = 2 },
  { .name = "C_I1", .from = 1, .exchange = MODIKE_EX_MAIN, .msg_no = 2, .role = MODIKE_ROLE_INITIATOR,
    .flags = MODIKE_ROW_P1_DONE, .handler = core_handler },
  { .name = "C_R2", .from = 2, .exchange = MODIKE_EX_MAIN, .msg_no = 3, .role = MODIKE_ROLE_RESPONDER,
    .flags = MODIKE_ROW_DONE, .handler = core_handler },
};

static gboolean
builtin_init (ModikePlugin *plugin, GError **error)
{
  tp_trace ("init", modike_plugin_get_name (plugin));
  return modike_register_exchange (plugin, MODIKE_EX_MAIN, "Main again", core_rows, G_N_ELEMENTS (core_rows),
                                   error);
}

static const char *const builtin_deps[] = { "solo", NULL };
static const ModikePluginDescriptor builtin_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "builtin",
  .depends = builtin_deps,
  .init = builtin_init,
};

static gboolean
shadow_init (ModikePlugin *plugin, GError **error)
{
  tp_trace ("init-static", modike_plugin_get_name (plugin));
  return TRUE;
}

/* Same name as a plugin file: the static descriptor wins. */
static const ModikePluginDescriptor shadow_desc = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "base",
  .init = shadow_init,
};

static const ModikePluginDescriptor old_desc = {
  .abi_major = MODIKE_ABI_MAJOR + 1, .abi_minor = 0, .struct_size = sizeof (ModikePluginDescriptor),
  .name = "oldstatic",
  .init = shadow_init,
};

static void
test_static (Fixture *fx, gconstpointer data)
{
  g_autofree char *order = NULL;
  g_autofree char *desc = NULL;

  modike_loader_add_static (fx->loader, &builtin_desc);
  modike_loader_add_static (fx->loader, &shadow_desc);
  modike_loader_add_static (fx->loader, &old_desc);

  load_refused (fx, NAMES ("oldstatic"), MODIKE_LOADER_ERROR_ABI, "oldstatic", "ABI 2.0", NULL);
  load_ok (fx, NAMES ("builtin", "base", "solo"));
  order = loaded_names (fx);
  g_assert_cmpstr (order, ==, "base solo builtin");
  assert_trace ("init-static:base init:solo init:builtin ");
  desc = modike_registry_describe (fx->reg);
  g_assert_nonnull (strstr (desc, "exchange 2 (Main again) by builtin\n"));
}

static void
test_core_owner (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  ModikePlugin *core = modike_registry_core_plugin (fx->reg);
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;

  g_assert_cmpstr (modike_plugin_get_name (core), ==, "core");
  g_assert_true (modike_register_exchange (core, MODIKE_EX_MAIN, "Main", core_rows, G_N_ELEMENTS (core_rows), &error));
  g_assert_no_error (error);
  g_assert_nonnull (modike_registry_find_row (fx->reg, MODIKE_EX_MAIN, 0, 1, MODIKE_ROLE_RESPONDER));

  modike_loader_add_static (fx->loader, &builtin_desc);
  load_refused (fx, NAMES ("solo", "builtin"), MODIKE_LOADER_ERROR_CONFLICT, "builtin",
                "claims exchange type 2 (Main) already claimed by 'core'", NULL);
  assert_trace ("init:solo init:builtin fini:solo free:solo ");

  /* The core section and port names are the core's too. */
  before = modike_registry_describe (fx->reg);
  g_assert_false (modike_register_port (core, 500, 0, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_clear_error (&error);
  modike_registry_remove_plugin (fx->reg, core);
  g_assert_null (modike_registry_find_row (fx->reg, MODIKE_EX_MAIN, 0, 1, MODIKE_ROLE_RESPONDER));
  g_assert_true (modike_registry_core_plugin (fx->reg) == core);
  after = modike_registry_describe (fx->reg);
  g_assert_cmpstr (after, ==, "plugin core\n");
}

/* ---- Registry calls directly ---- */

static const ModikePluginDescriptor p_desc = { MODIKE_PLUGIN_DESCRIPTOR_INIT, .name = "p" };
static const ModikePluginDescriptor q_desc = { MODIKE_PLUGIN_DESCRIPTOR_INIT, .name = "q" };

static void
expect_invalid_rows (ModikePlugin *p, const ModikeFsmRow *rows, gsize n, const char *cause)
{
  g_autoptr (GError) error = NULL;

  g_assert_false (modike_register_exchange (p, MODIKE_EX_MAIN, "Main", rows, n, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_test_message ("invalid: %s", error->message);
  g_assert_true (g_str_has_prefix (error->message, "plugin 'p': exchange 2 (Main): row "));
  g_assert_nonnull (strstr (error->message, cause));
  g_assert_false (modike_registry_has_exchange (modike_plugin_get_registry (p), MODIKE_EX_MAIN));
}

static void
test_table_checks (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  ModikePlugin *p = modike_registry_add_plugin (reg, &p_desc);
  ModikeFsmRow rows[G_N_ELEMENTS (core_rows)];
  ModikeFsmRow dup[G_N_ELEMENTS (core_rows) + 1];
  g_autoptr (GError) error = NULL;

#define RESET() memcpy (rows, core_rows, sizeof rows)
  memcpy (dup, core_rows, sizeof core_rows);
  dup[G_N_ELEMENTS (core_rows)] = core_rows[2];
  dup[G_N_ELEMENTS (core_rows)].name = "C_I1b";
  expect_invalid_rows (p, dup, G_N_ELEMENTS (dup), "'C_I1b' has the same key (from 1, message 2, role 1) as row 'C_I1'");
  RESET ();
  RESET ();
  rows[1].from = 5;
  expect_invalid_rows (p, rows, G_N_ELEMENTS (rows), "'C_R1' is a start row but has from-state 5");
  RESET ();
  rows[1].optional |= PB (MODIKE_PL_SA);
  expect_invalid_rows (p, rows, G_N_ELEMENTS (rows), "'C_R1' lists payload bits 0x2 as both required and optional");
  RESET ();
  rows[1].next = 7;
  expect_invalid_rows (p, rows, G_N_ELEMENTS (rows), "'C_R1' goes to state 7, which no row starts from");
  RESET ();
  rows[0].next = 0;
  expect_invalid_rows (p, rows, G_N_ELEMENTS (rows), "'C_I0' goes to state 0 but is not terminal");
  RESET ();
  rows[0].msg_no = 1;
  expect_invalid_rows (p, rows, G_N_ELEMENTS (rows), "'C_I0' must have message number 0");
  RESET ();
  rows[2].flags |= MODIKE_ROW_ENCRYPTED | MODIKE_ROW_PLAIN;
  expect_invalid_rows (p, rows, G_N_ELEMENTS (rows), "'C_I1' requires the message both encrypted and plain");
  RESET ();
  rows[2].exchange = MODIKE_EX_AGGRESSIVE;
  expect_invalid_rows (p, rows, G_N_ELEMENTS (rows), "'C_I1' is for exchange 4");
  RESET ();
  rows[1].repeatable |= PB (MODIKE_PL_KE);
  expect_invalid_rows (p, rows, G_N_ELEMENTS (rows), "'C_R1' marks payload bits 0x10 repeatable");
  g_assert_null (modike_plugin_get_refusal (modike_registry_core_plugin (reg)));
  g_assert_nonnull (modike_plugin_get_refusal (p));

  /* A terminal row needs no known next state; the good table passes. */
  RESET ();
  rows[2].next = 99;
  g_assert_true (modike_register_exchange (p, MODIKE_EX_MAIN, "Main", rows, G_N_ELEMENTS (rows), &error));
  g_assert_no_error (error);
  g_assert_true (modike_registry_check_table (reg, &error));
  g_assert_no_error (error);
#undef RESET
}

static ModikeVerdict
claim_fn (ModikeExchange *x, const ModikeMessage *msg, const ModikePayload *const *payloads, guint n,
          gpointer user, GError **error)
{
  return MODIKE_V_OK;
}

static void
test_payload_claims (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  ModikePlugin *p = modike_registry_add_plugin (reg, &p_desc);
  ModikePlugin *q = modike_registry_add_plugin (reg, &q_desc);
  const ModikeMsgPoint natd[] = { { MODIKE_EX_MAIN, 3 }, { MODIKE_EX_MAIN, 4 } };
  const ModikeMsgPoint sa_at_1[] = { { MODIKE_EX_MAIN, 1 } };
  const ModikeMsgPoint twice[] = { { MODIKE_EX_MAIN, 3 }, { MODIKE_EX_MAIN, 3 } };
  const ModikeMsgPoint zero[] = { { MODIKE_EX_MAIN, 0 } };
  g_autoptr (GError) error = NULL;
  GPtrArray *at3;

  g_assert_true (modike_register_payload (p, MODIKE_PL_NAT_D, natd, 2, 2, claim_fn, NULL, &error));
  g_assert_no_error (error);
  /* Another type may share the point ... */
  g_assert_true (modike_register_payload (q, MODIKE_PL_NAT_D_DRAFT, natd, 1, 2, claim_fn, NULL, &error));
  g_assert_no_error (error);
  at3 = modike_registry_payloads_at (reg, MODIKE_EX_MAIN, 3);
  g_assert_cmpuint (at3->len, ==, 2);
  g_assert_cmpuint (modike_registry_payloads_at (reg, MODIKE_EX_MAIN, 4)->len, ==, 1);
  /* ... the same type may not be claimed twice, not even elsewhere. */
  g_assert_false (modike_register_payload (q, MODIKE_PL_NAT_D, sa_at_1, 1, 1, claim_fn, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_assert_cmpstr (error->message, ==, "plugin 'q' claims payload type 20 (NAT-D) already claimed by 'p'");
  g_clear_error (&error);
  g_assert_false (modike_register_payload (q, MODIKE_PL_NAT_OA, twice, 2, 1, claim_fn, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_register_payload (q, MODIKE_PL_NAT_OA, zero, 1, 1, claim_fn, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_register_payload (q, MODIKE_PL_NAT_OA, natd, 2, 1, NULL, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);

  /* An exchange whose rows list a type claimed at their point is refused. */
  {
    ModikeFsmRow rows[G_N_ELEMENTS (core_rows)];

    memcpy (rows, core_rows, sizeof rows);
    rows[3].optional = PB (MODIKE_PL_NAT_D);
    g_assert_false (modike_register_exchange (modike_registry_core_plugin (reg), MODIKE_EX_MAIN, "Main", rows,
                                              G_N_ELEMENTS (rows), &error));
    g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
    g_assert_cmpstr (error->message, ==, "plugin 'core' lists payload type 20 (NAT-D) in row 'C_R2' of exchange 2 "
                     "(Main), which 'p' claims at that message");
    g_clear_error (&error);
  }

  /* Removing q leaves p's claims and drops q's from the index. */
  modike_registry_remove_plugin (reg, q);
  at3 = modike_registry_payloads_at (reg, MODIKE_EX_MAIN, 3);
  g_assert_cmpuint (at3->len, ==, 1);
  g_assert_cmpuint (((ModikePayloadClaim *) at3->pdata[0])->type, ==, MODIKE_PL_NAT_D);
}

static void
vid_noop (ModikeIkeSa *sa, const guint8 *vid, gsize len, gpointer user)
{
}

static void
test_vendor_ids (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  ModikePlugin *p = modike_registry_add_plugin (reg, &p_desc);
  ModikePlugin *q = modike_registry_add_plugin (reg, &q_desc);
  g_autoptr (GError) error = NULL;
  const ModikeVendorIdReg *v;

  g_assert_true (modike_register_vendor_id (p, "dpd", (const guint8 *) "\xaf\xca\xd7\x13", 4, MODIKE_VID_PREFIX,
                                            vid_noop, NULL, &error));
  g_assert_no_error (error);
  /* Starts with p's prefix: a received VID would match both. */
  g_assert_false (modike_register_vendor_id (q, "long", (const guint8 *) "\xaf\xca\xd7\x13\x01", 5, 0, vid_noop,
                                             NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_assert_cmpstr (error->message, ==, "plugin 'q' claims vendor ID afcad71301 (long), overlapping 'dpd' already claimed by 'p'");
  g_clear_error (&error);
  /* A prefix of p's prefix collides too. */
  g_assert_false (modike_register_vendor_id (q, "short", (const guint8 *) "\xaf\xca", 2, MODIKE_VID_PREFIX, vid_noop,
                                             NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_clear_error (&error);
  g_assert_true (modike_register_vendor_id (q, "other", (const guint8 *) "\xaf\xca\xd7\x14", 4, MODIKE_VID_SEND,
                                            vid_noop, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (modike_register_vendor_id (q, "empty", (const guint8 *) "", 0, 0, vid_noop, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);

  v = modike_registry_match_vendor_id (reg, (const guint8 *) "\xaf\xca\xd7\x13\x00\x00\x00\x01", 8);
  g_assert_nonnull (v);
  g_assert_cmpstr (v->name, ==, "dpd");
  v = modike_registry_match_vendor_id (reg, (const guint8 *) "\xaf\xca\xd7\x14", 4);
  g_assert_nonnull (v);
  g_assert_cmpstr (v->name, ==, "other");
  g_assert_null (modike_registry_match_vendor_id (reg, (const guint8 *) "\xaf\xca\xd7\x14\x00", 5));
  g_assert_null (modike_registry_match_vendor_id (reg, (const guint8 *) "\xaf\xca\xd7", 3));
}

static gboolean
apply_records (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  g_autofree xmlChar *v = section != NULL ? xmlGetProp (section, BAD_CAST "value") : NULL;

  tp_trace (section != NULL ? (const char *) v : "none", modike_plugin_get_name (plugin));
  return TRUE;
}

static gboolean
apply_fails (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  g_set_error_literal (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "greeting too long");
  return FALSE;
}

static void
test_config_sections (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  ModikePlugin *p = modike_registry_add_plugin (reg, &p_desc);
  ModikePlugin *q = modike_registry_add_plugin (reg, &q_desc);
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeConfig) cfg = NULL;
  g_autoptr (GHashTable) fragments = NULL;
  const char *frag = "<element name=\"psec\" xmlns=\"http://relaxng.org/ns/structure/1.0\">"
                     "<attribute name=\"value\"/></element>";
  const char *xml = "<?xml version=\"1.0\"?>\n<modike>\n  <psec value=\"hello\"/>\n"
                    "  <peer name=\"gw\">\n    <auth method=\"psk\" secret=\"s\"/>\n"
                    "    <phase1><proposal encryption=\"aes128\" hash=\"sha256\" group=\"modp2048\"/></phase1>\n"
                    "  </peer>\n</modike>\n";

  g_string_truncate (trace, 0);
  g_assert_true (modike_register_config_section (p, "psec", frag, apply_records, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (modike_register_config_section (q, "psec", frag, apply_records, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_assert_cmpstr (error->message, ==, "plugin 'q' claims config section <psec> already claimed by 'p'");
  g_clear_error (&error);
  g_assert_false (modike_register_config_section (q, "peer", frag, apply_records, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_assert_cmpstr (error->message, ==, "plugin 'q' claims config section <peer> already claimed by 'core'");
  g_clear_error (&error);
  /* The fragment must describe the element it registers. */
  g_assert_false (modike_register_config_section (q, "qsec", frag, apply_records, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_register_config_section (q, "qsec", "<element name=\"qsec\">", apply_records, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_register_config_section (q, "1bad", frag, apply_records, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);

  cfg = modike_config_load_string (xml, "sections.xml", &error);
  g_assert_no_error (error);
  g_assert_nonnull (cfg);
  fragments = modike_registry_config_fragments (reg);
  g_assert_true (modike_config_check_plugins (cfg, fragments, &error));
  g_assert_no_error (error);
  g_assert_true (modike_registry_apply_config (reg, cfg, &error));
  g_assert_no_error (error);
  assert_trace ("hello:p ");
  g_assert_true (modike_registry_apply_config (reg, NULL, &error));
  g_assert_no_error (error);
  assert_trace ("none:p ");

  /* A failing apply names the plugin and the section. */
  g_assert_true (modike_register_config_section (q, "qsec", "<element name=\"qsec\"><empty/></element>", apply_fails,
                                                 NULL, &error));
  g_assert_no_error (error);
  g_assert_false (modike_registry_apply_config (reg, cfg, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL);
  g_assert_cmpstr (error->message, ==, "plugin 'q': config section <qsec>: greeting too long");
  g_clear_error (&error);
  assert_trace ("hello:p ");
}

static void
half_policy_add (gpointer user, ModikeSpdEntry *e)
{
  modike_spd_entry_free (e);
}

static void
half_policy_del (gpointer user, guint32 spd_id)
{
}

static void
half_sa_del_sa (gpointer user, const ModikeSadEntry *e)
{
}

static void
half_sa_stats_sa (gpointer user, const ModikeSadEntry *e, ModikeSaStats *out)
{
}

static void
test_ports_and_singletons (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  ModikePlugin *p = modike_registry_add_plugin (reg, &p_desc);
  ModikePlugin *q = modike_registry_add_plugin (reg, &q_desc);
  static const ModikeDatapathOps dp = { .name = "kernel" };
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) ports = NULL;
  gpointer user = NULL;

  g_assert_true (modike_register_port (p, 4500, MODIKE_PORT_NON_ESP_MARKER, &error));
  g_assert_true (modike_register_port (q, 4501, 0, &error));
  g_assert_false (modike_register_port (q, 4500, 0, &error));
  g_assert_cmpstr (error->message, ==, "plugin 'q' claims port 4500 already claimed by 'p'");
  g_clear_error (&error);
  g_assert_false (modike_register_port (q, 500, 0, &error));
  g_assert_cmpstr (error->message, ==, "plugin 'q' claims port 500 already claimed by 'core'");
  g_clear_error (&error);
  ports = modike_registry_ports (reg);
  g_assert_cmpuint (ports->len, ==, 2);
  g_assert_cmpuint (g_array_index (ports, guint32, 0), ==, 4500 | 1 << 16);
  g_assert_cmpuint (g_array_index (ports, guint32, 1), ==, 4501);

  /* policy_add and policy_del come together or not at all; so do
   * sa_del_sa and sa_stats_sa. */
  for (guint k = 0; k < 4; k++)
    {
      ModikeDatapathOps half = { .name = "half" };

      switch (k)
        {
        case 0: half.policy_add = half_policy_add; break;
        case 1: half.policy_del = half_policy_del; break;
        case 2: half.sa_del_sa = half_sa_del_sa; break;
        default: half.sa_stats_sa = half_sa_stats_sa; break;
        }
      g_assert_false (modike_register_datapath (p, &half, NULL, &error));
      g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
      g_assert_nonnull (strstr (error->message, k < 2 ? "only one of policy_add and policy_del"
                                                      : "only one of sa_del_sa and sa_stats_sa"));
      g_clear_error (&error);
    }
  g_assert_null (modike_registry_datapath (reg, NULL));
  g_assert_true (modike_register_datapath (p, &dp, GUINT_TO_POINTER (7), &error));
  g_assert_false (modike_register_datapath (q, &dp, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_clear_error (&error);
  g_assert_cmpstr (modike_registry_datapath (reg, &user)->name, ==, "kernel");
  g_assert_cmpuint (GPOINTER_TO_UINT (user), ==, 7);
  modike_registry_remove_plugin (reg, p);
  g_assert_null (modike_registry_datapath (reg, NULL));
  g_assert_true (modike_register_datapath (q, &dp, NULL, &error));
  g_assert_no_error (error);
}

static void
data_destroy (gpointer data)
{
  (*(int *) data)++;
}

static void
test_plugin_data (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  ModikePlugin *p = modike_registry_add_plugin (reg, &p_desc);
  int freed_a = 0, freed_b = 0;

  g_assert_true (modike_plugin_get_registry (p) == reg);
  g_assert_true (modike_plugin_get_descriptor (p) == &p_desc);
  modike_plugin_set_data (p, &freed_a, data_destroy);
  g_assert_true (modike_plugin_get_data (p) == &freed_a);
  modike_plugin_set_data (p, &freed_b, data_destroy);  /* replacing frees the old */
  g_assert_cmpint (freed_a, ==, 1);
  modike_registry_remove_plugin (reg, p);
  g_assert_cmpint (freed_b, ==, 1);
}

static void
auth_noop (ModikeIkeSa *sa, guint16 method, gboolean local, gpointer user)
{
}

static void
test_auth_methods (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  ModikePlugin *core = modike_registry_core_plugin (reg);
  ModikePlugin *p = modike_registry_add_plugin (reg, &p_desc);
  ModikePlugin *q = modike_registry_add_plugin (reg, &q_desc);
  g_autoptr (GError) error = NULL;
  g_autofree char *before = NULL, *after = NULL;
  const ModikeAuthMethodReg *m;

  g_assert_true (modike_register_auth_method (core, MODIKE_AUTH_PSK, "psk", MODIKE_AUTH_PSK, 0, NULL, NULL, &error));
  g_assert_true (modike_register_auth_method (p, MODIKE_AUTH_XAUTH_INIT_PSK, "xauth-psk", MODIKE_AUTH_PSK,
                                              MODIKE_ROLE_INITIATOR, auth_noop, NULL, &error));
  /* An RSA based method registers even though phase 1 cannot run it yet. */
  g_assert_true (modike_register_auth_method (p, MODIKE_AUTH_XAUTH_INIT_RSA, "xauth-rsa", MODIKE_AUTH_RSA_SIG,
                                              MODIKE_ROLE_INITIATOR, auth_noop, NULL, &error));
  g_assert_no_error (error);
  before = modike_registry_describe (reg);
  g_assert_nonnull (strstr (before, "auth-method 65001 (xauth-psk) base psk role 1 by p\n"));

  /* The value, the name and the core's methods are exclusive. */
  g_assert_false (modike_register_auth_method (q, MODIKE_AUTH_XAUTH_INIT_PSK, "other", MODIKE_AUTH_PSK,
                                               MODIKE_ROLE_INITIATOR, auth_noop, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_assert_cmpstr (error->message, ==, "plugin 'q' claims auth method 65001 (xauth-psk) already claimed by 'p'");
  g_clear_error (&error);
  g_assert_false (modike_register_auth_method (q, MODIKE_AUTH_XAUTH_RESP_PSK, "xauth-psk", MODIKE_AUTH_PSK,
                                               MODIKE_ROLE_RESPONDER, auth_noop, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_assert_cmpstr (error->message, ==, "plugin 'q' claims auth method name 'xauth-psk' (method 65001) already claimed by 'p'");
  g_clear_error (&error);
  g_assert_false (modike_register_auth_method (q, MODIKE_AUTH_PSK, "mine", MODIKE_AUTH_PSK, 0, auth_noop, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_assert_cmpstr (error->message, ==, "plugin 'q' claims auth method 1 (psk) already claimed by 'core'");
  g_clear_error (&error);
  g_assert_false (modike_register_auth_method (q, MODIKE_AUTH_RSA_SIG, "rsa", MODIKE_AUTH_RSA_SIG, 0, auth_noop, NULL,
                                               &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_clear_error (&error);
  /* Bad arguments. */
  g_assert_false (modike_register_auth_method (q, MODIKE_AUTH_HYBRID_INIT_RSA, "Hybrid RSA", MODIKE_AUTH_RSA_SIG,
                                               MODIKE_ROLE_INITIATOR, auth_noop, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_register_auth_method (q, MODIKE_AUTH_HYBRID_INIT_RSA, "hybrid-rsa", MODIKE_AUTH_DSS,
                                               MODIKE_ROLE_INITIATOR, auth_noop, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_register_auth_method (q, MODIKE_AUTH_HYBRID_INIT_RSA, "hybrid-rsa", MODIKE_AUTH_RSA_SIG, 7,
                                               auth_noop, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  after = modike_registry_describe (reg);
  g_assert_cmpstr (after, ==, before);

  m = modike_registry_auth_method_named (reg, "xauth-rsa");
  g_assert_nonnull (m);
  g_assert_cmpuint (m->method, ==, 65005);
  g_assert_cmpuint (m->base, ==, MODIKE_AUTH_RSA_SIG);
  g_assert_true (modike_registry_auth_method (reg, 65001)->owner == p);
  /* Unloading p frees its values for q. */
  modike_registry_remove_plugin (reg, p);
  g_assert_null (modike_registry_auth_method (reg, 65001));
  g_assert_nonnull (modike_registry_auth_method (reg, MODIKE_AUTH_PSK));
  g_assert_true (modike_register_auth_method (q, MODIKE_AUTH_XAUTH_INIT_PSK, "xauth-psk", MODIKE_AUTH_PSK,
                                              MODIKE_ROLE_INITIATOR, auth_noop, NULL, &error));
  g_assert_no_error (error);
}

static gboolean
attr_noop (ModikeIkeSa *sa, const ModikeAttrPayload *payload, const ModikeAttrValue *value, gpointer user,
           GError **error)
{
  return TRUE;
}

static void
test_attribute_claims (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  ModikePlugin *p = modike_registry_add_plugin (reg, &p_desc);
  ModikePlugin *q = modike_registry_add_plugin (reg, &q_desc);
  static const ModikeAttrSpec modecfg[] = {
    { 1, MODIKE_ATTR_FMT_IP4, "INTERNAL_IP4_ADDRESS" },
    { 2, MODIKE_ATTR_FMT_IP4, "INTERNAL_IP4_NETMASK" },
    { 28676, MODIKE_ATTR_FMT_BYTES, "UNITY_SPLIT_INCLUDE" },
  };
  static const ModikeAttrSpec overlapping[] = {
    { 16520, MODIKE_ATTR_FMT_U16, "XAUTH_TYPE" },
    { 2, MODIKE_ATTR_FMT_IP4, "MY_NETMASK" },
  };
  static const ModikeAttrSpec doubled[] = {
    { 16521, MODIKE_ATTR_FMT_TEXT, "XAUTH_USER_NAME" },
    { 16521, MODIKE_ATTR_FMT_TEXT, "XAUTH_USER_NAME" },
  };
  static const ModikeAttrSpec af_bit[] = { { 0x8001, MODIKE_ATTR_FMT_U16, "TV" } };
  static const ModikeAttrSpec bad_format[] = { { 16522, (ModikeAttrFormat) 99, "X" } };
  g_autoptr (GError) error = NULL;
  g_autofree char *before = NULL, *after = NULL;

  g_assert_true (modike_register_attributes (p, modecfg, G_N_ELEMENTS (modecfg), attr_noop, NULL, &error));
  g_assert_no_error (error);
  before = modike_registry_describe (reg);
  /* All or nothing: XAUTH_TYPE is not taken either. */
  g_assert_false (modike_register_attributes (q, overlapping, G_N_ELEMENTS (overlapping), attr_noop, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_assert_cmpstr (error->message, ==, "plugin 'q' claims attribute type 2 (INTERNAL_IP4_NETMASK) already claimed by 'p'");
  g_clear_error (&error);
  g_assert_null (modike_registry_attribute (reg, 16520));
  g_assert_false (modike_register_attributes (q, doubled, G_N_ELEMENTS (doubled), attr_noop, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_register_attributes (q, af_bit, 1, attr_noop, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_register_attributes (q, bad_format, 1, attr_noop, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (modike_register_attributes (q, overlapping, 1, NULL, NULL, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID);
  g_clear_error (&error);
  after = modike_registry_describe (reg);
  g_assert_cmpstr (after, ==, before);
  g_assert_nonnull (strstr (after, "attribute 28676 (UNITY_SPLIT_INCLUDE) format 0 by p\n"));

  g_assert_true (modike_register_attributes (q, overlapping, 1, attr_noop, NULL, &error));
  g_assert_true (modike_registry_attribute (reg, 16520)->owner == q);
  g_assert_cmpuint (modike_registry_attribute (reg, 1)->format, ==, MODIKE_ATTR_FMT_IP4);
  modike_registry_remove_plugin (reg, p);
  g_assert_null (modike_registry_attribute (reg, 1));
  g_assert_nonnull (modike_registry_attribute (reg, 16520));
}

/* A plugin built for ABI 1.1 passes OS adapter ops without set_dns and
 * clear_dns: the core must not read past them and sees them as NULL. */
static void
test_os_adapter_older_minor (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  static const ModikePluginDescriptor old_minor = {
    .abi_major = MODIKE_ABI_MAJOR, .abi_minor = 1, .struct_size = sizeof (ModikePluginDescriptor), .name = "old",
  };
  ModikePlugin *p = modike_registry_add_plugin (reg, &old_minor);
  gsize short_len = G_STRUCT_OFFSET (ModikeOsAdapterOps, set_dns);
  /* Exactly the 1.1 size on the heap: ASan catches a longer read. */
  guint8 *ops = g_malloc0 (short_len);
  const char *name = "old-tun";
  g_autoptr (GError) error = NULL;
  const ModikeOsAdapterOps *got;

  memcpy (ops + G_STRUCT_OFFSET (ModikeOsAdapterOps, name), &name, sizeof name);
  g_assert_true (modike_register_os_adapter (p, (const ModikeOsAdapterOps *) (gpointer) ops, NULL, &error));
  g_assert_no_error (error);
  g_free (ops);
  got = modike_registry_os_adapter (reg, NULL);
  g_assert_cmpstr (got->name, ==, "old-tun");
  g_assert_null (got->set_dns);
  g_assert_null (got->clear_dns);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  trace = g_string_new (NULL);

#define FX(path, fn) g_test_add ("/loader/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  FX ("order", test_order);
  FX ("second-call", test_second_call);
  FX ("queries", test_queries);
  FX ("refuse/unknown", test_unknown);
  FX ("refuse/not-module", test_not_module);
  FX ("refuse/abi", test_abi);
  FX ("refuse/names", test_names);
  FX ("refuse/missing-dependency", test_missing_dependency);
  FX ("refuse/cycle", test_cycle);
  FX ("refuse/conflict-after-load", test_conflicts_after_load);
  FX ("refuse/conflict-same-call", test_conflicts_same_call);
  FX ("refuse/ignored-refusal", test_ignored_refusal);
  FX ("refuse/init", test_init_failure);
  FX ("static", test_static);
  FX ("core-owner", test_core_owner);
#undef FX
  g_test_add_func ("/loader/exports", test_exports);
  g_test_add_func ("/registry/table-checks", test_table_checks);
  g_test_add_func ("/registry/payload-claims", test_payload_claims);
  g_test_add_func ("/registry/vendor-ids", test_vendor_ids);
  g_test_add_func ("/registry/config-sections", test_config_sections);
  g_test_add_func ("/registry/ports-and-singletons", test_ports_and_singletons);
  g_test_add_func ("/registry/plugin-data", test_plugin_data);
  g_test_add_func ("/registry/auth-methods", test_auth_methods);
  g_test_add_func ("/registry/attribute-claims", test_attribute_claims);
  g_test_add_func ("/registry/os-adapter-older-minor", test_os_adapter_older_minor);

  return g_test_run ();
}
