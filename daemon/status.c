/* The engine's status text (core/engine/status.c documents the fixed line
 * format) as structured data for the control socket: one object per IKE
 * SA with its ESP SAs as "children" and its policy instances as
 * "policies". Tokens key=value become members;
 * in/out pairs ("packets=3/4") become "<key>_in" and "<key>_out". */
#include "daemon.h"

#include <string.h>

static void
set_value (JsonObject *o, const char *key, const char *value)
{
  const char *slash = strchr (value, '/');
  char *end = NULL;
  guint64 n;

  if (slash != NULL && strcmp (key, "pfs") != 0)
    {
      g_autofree char *in_key = g_strconcat (key, "_in", NULL);
      g_autofree char *out_key = g_strconcat (key, "_out", NULL);

      json_object_set_int_member (o, in_key, (gint64) g_ascii_strtoull (value, NULL, 10));
      json_object_set_int_member (o, out_key, (gint64) g_ascii_strtoull (slash + 1, NULL, 10));
      return;
    }
  static const char *const renames[][2] = { { "i", "icookie" }, { "r", "rcookie" }, { "in", "spi_in" },
                                            { "out", "spi_out" } };

  for (gsize i = 0; i < G_N_ELEMENTS (renames); i++)
    if (strcmp (key, renames[i][0]) == 0)
      key = renames[i][1];
  if (strcmp (key, "life") == 0 || strcmp (key, "drops") == 0)
    {
      n = g_ascii_strtoull (value, &end, 10);
      json_object_set_int_member (o, strcmp (key, "life") == 0 ? "lifetime" : key, (gint64) n);
      return;
    }
  json_object_set_string_member (o, key, value);
}

/* "POLICY <peer> <name> <action> local=.. remote=..": the policy instances
 * the SA's mode config made, as the IKE object's "policies". */
static void
add_policy (JsonObject *ike, char **tok)
{
  JsonObject *o = json_object_new ();

  if (!json_object_has_member (ike, "policies"))
    json_object_set_array_member (ike, "policies", json_array_new ());
  json_object_set_string_member (o, "name", tok[2]);
  json_object_set_string_member (o, "action", tok[3]);
  for (guint t = 4; tok[t]; t++)
    {
      char *eq = strchr (tok[t], '=');

      if (eq != NULL)
        {
          *eq = '\0';
          json_object_set_string_member (o, tok[t], eq + 1);
        }
    }
  json_array_add_object_element (json_object_get_array_member (ike, "policies"), o);
}

JsonObject *
daemon_status_json (const char *text)
{
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  JsonObject *res = json_object_new ();
  JsonArray *sas = json_array_new ();
  JsonObject *ike = NULL;

  for (guint i = 0; lines[i]; i++)
    {
      g_auto (GStrv) tok = g_strsplit (g_strstrip (lines[i]), " ", -1);
      gboolean is_ike = g_strcmp0 (tok[0], "IKE") == 0;
      guint bare = 0;
      JsonObject *o;

      if (g_strcmp0 (tok[0], "POLICY") == 0 && ike != NULL && g_strv_length (tok) >= 4)
        {
          add_policy (ike, tok);
          continue;
        }
      if ((!is_ike && g_strcmp0 (tok[0], "ESP") != 0) || tok[1] == NULL || (!is_ike && ike == NULL))
        continue;
      o = json_object_new ();
      json_object_set_string_member (o, "peer", tok[1]);
      for (guint t = 2; tok[t]; t++)
        {
          char *eq = strchr (tok[t], '=');

          if (eq)
            {
              *eq = '\0';
              set_value (o, tok[t], eq + 1);
              continue;
            }
          /* Bare words in their documented order. */
          {
            static const char *const ike_words[] = { "state", "algorithms", "exchange", "role" };
            static const char *const esp_words[] = { "algorithms", "mode", "encapsulation" };

            if (is_ike && bare < G_N_ELEMENTS (ike_words))
              json_object_set_string_member (o, ike_words[bare++], tok[t]);
            else if (!is_ike && bare < G_N_ELEMENTS (esp_words))
              json_object_set_string_member (o, esp_words[bare++], tok[t]);
          }
        }
      if (is_ike)
        {
          json_object_set_array_member (o, "children", json_array_new ());
          json_array_add_object_element (sas, o);
          ike = o;
        }
      else
        {
          if (!json_object_has_member (o, "encapsulation"))
            json_object_set_string_member (o, "encapsulation", "none");
          json_array_add_object_element (json_object_get_array_member (ike, "children"), o);
        }
    }
  json_object_set_array_member (res, "sas", sas);
  return res;
}
