/* Shared by the xauth suite's tests: the plugin on a harness node and
 * a config with the XAuth method. */
#pragma once

#include "harness.h"
#include "xauth.h"

/* The plugin on a node as the loader gives it: descriptor, init, table. */
Xauth *load_plugin (Node *n);
/* `xml` with `section` added before </modike>; applied as the daemon does
 * (plugin sections, auth names, then the engine). */
gboolean configure_xml (Node *n, const char *xml, const char *section, GError **error);
/* config_xml with method xauth-psk and section added (configure_xml). */
gboolean configure (Node *n, const Params *p, gboolean is_a, const char *section, GError **error);
/* Removes a test's temporary directory and the files in it. */
void remove_tmp_dir (const char *dir);
