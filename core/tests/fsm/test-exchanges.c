/* Suite fsm: Establishing SAs: every case, algorithm and family, the status text, the
 * state table and the selectors. */
#include "harness.h"

/* ---- cases ---- */

typedef struct {
  const char *path, *exchange, *pfs;
  gboolean a_initiates;
} EstablishCase;

/* Both exchanges, with and without PFS, started from either end. */
static const EstablishCase establish_cases[] = {
  { "/fsm/main/a-initiates/no-pfs", "main", "none", TRUE },
  { "/fsm/main/a-initiates/pfs", "main", "modp2048", TRUE },
  { "/fsm/main/b-initiates/no-pfs", "main", "none", FALSE },
  { "/fsm/main/b-initiates/pfs", "main", "ecp256", FALSE },
  { "/fsm/aggressive/a-initiates/no-pfs", "aggressive", "none", TRUE },
  { "/fsm/aggressive/a-initiates/pfs", "aggressive", "modp2048", TRUE },
  { "/fsm/aggressive/b-initiates/no-pfs", "aggressive", "none", FALSE },
  { "/fsm/aggressive/b-initiates/pfs", "aggressive", "curve25519", FALSE },
};

static void
test_establish (gconstpointer data)
{
  const EstablishCase *c = data;
  Params p = params_default ();

  p.exchange = c->exchange;
  p.pfs = c->pfs;
  establish (&p, c->a_initiates);
}

typedef struct {
  const char *encr, *hash, *group, *esp, *integ, *pfs, *exchange;
} Algo;

/* Every phase 1 cipher, hash and group at least once; 3des-md5 and
 * aes256-md5 need the Appendix B key expansion. */
static const Algo algos[] = {
  { "3des", "md5", "modp1024", "3des", "md5", "none", "main" },
  { "aes128", "sha1", "modp1536", "aes128", "sha1", "modp1536", "main" },
  { "aes192", "sha256", "modp2048", "aes192", "sha256", "none", "aggressive" },
  { "aes256", "sha384", "modp3072", "aes256", "sha384", "none", "main" },
  { "aes128", "sha512", "modp4096", "aes128gcm16", NULL, "none", "main" },
  { "aes256", "md5", "ecp256", "aes256gcm16", NULL, "ecp256", "main" },
  { "aes128", "sha384", "ecp384", "aes256", "sha512", "ecp384", "aggressive" },
  { "aes192", "sha1", "curve25519", "aes128", "md5", "curve25519", "main" },
};

static void
test_algorithms (gconstpointer data)
{
  const Algo *al = data;
  Params p = params_default ();

  p.encr = al->encr;
  p.hash = al->hash;
  p.group = al->group;
  p.esp = al->esp;
  p.integ = al->integ;
  p.pfs = al->pfs;
  p.exchange = al->exchange;
  establish (&p, TRUE);
}

static void
test_ipv6 (void)
{
  Params p = params_default ();

  p.v6 = TRUE;
  p.pfs = "modp2048";
  establish (&p, TRUE);
  p.exchange = "aggressive";
  establish (&p, FALSE);
}

static void
test_transport (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  g_autoptr (GPtrArray) entries = NULL;

  p.mode = "transport";
  net = pair_up (&p, &a, &b, 1);
  check_pair (a, b, 1);
  entries = modike_sad_entries (modike_ike_get_sad (a->ike));
  g_assert_cmpint (((ModikeSadEntry *) g_ptr_array_index (entries, 0))->mode, ==, MODIKE_MODE_TRANSPORT);
  net_free (net);
}

static void
test_two_policies (void)
{
  Params p = params_default ();

  /* Two Quick Modes run at once on one IKE SA. */
  p.two_policies = TRUE;
  p.pfs = "modp2048";
  establish (&p, TRUE);
}

/* ---- status ---- */

static void
test_status (void)
{
  Params p = params_default ();
  Node *a, *b;
  Net *net;
  g_autoptr (GError) error = NULL;
  g_autofree char *sa_ = NULL, *sb = NULL;
  g_auto (GStrv) la = NULL, lb = NULL;
  g_autoptr (GRegex) ike_re = g_regex_new (
    "^IKE (\\S+) (ESTABLISHED|CONNECTING) i=([0-9a-f]{16}) r=([0-9a-f]{16}) (\\S+)-(\\S+)-(\\S+) "
    "(main|aggressive) (initiator|responder) life=([0-9]+)s$", 0, 0, NULL);
  g_autoptr (GRegex) esp_re = g_regex_new (
    "^  ESP (\\S+) in=([0-9a-f]{8}) out=([0-9a-f]{8}) (\\S+) (tunnel|transport)( udp-encap)? pfs=(\\S+) "
    "life=([0-9]+)s$", 0, 0, NULL);
  g_autoptr (GMatchInfo) m = NULL;
  g_autofree char *in_a = NULL, *out_a = NULL;

  p.pfs = "modp2048";
  net = pair_new (&p, &a, &b);
  sa_ = modike_ike_status (a->ike);
  g_assert_cmpstr (sa_, ==, "");
  g_free (g_steal_pointer (&sa_));
  g_assert_true (modike_ike_initiate (a->ike, "b", &error));
  sa_ = modike_ike_status (a->ike);
  g_assert_true (g_regex_match (ike_re, sa_, G_REGEX_MATCH_NOTEMPTY, NULL) || strstr (sa_, "CONNECTING") != NULL);
  g_free (g_steal_pointer (&sa_));
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  sa_ = modike_ike_status (a->ike);
  sb = modike_ike_status (b->ike);
  la = g_strsplit (sa_, "\n", -1);
  lb = g_strsplit (sb, "\n", -1);
  g_assert_cmpuint (g_strv_length (la), ==, 3); /* IKE, ESP, "" */
  g_assert_cmpstr (la[2], ==, "");

  g_assert_true (g_regex_match (ike_re, la[0], 0, &m));
  {
    g_autofree char *peer = g_match_info_fetch (m, 1);
    g_assert_cmpstr (peer, ==, "b");
  }
  {
    g_autofree char *s = g_match_info_fetch (m, 2), *e = g_match_info_fetch (m, 5), *h = g_match_info_fetch (m, 6),
                    *gr = g_match_info_fetch (m, 7), *mo = g_match_info_fetch (m, 8), *r = g_match_info_fetch (m, 9),
                    *l = g_match_info_fetch (m, 10);
    g_assert_cmpstr (s, ==, "ESTABLISHED");
    g_assert_cmpstr (e, ==, "aes128");
    g_assert_cmpstr (h, ==, "sha256");
    g_assert_cmpstr (gr, ==, "modp2048");
    g_assert_cmpstr (mo, ==, "main");
    g_assert_cmpstr (r, ==, "initiator");
    g_assert_cmpstr (l, ==, "28800");
  }
  g_clear_pointer (&m, g_match_info_unref);
  g_assert_true (g_regex_match (esp_re, la[1], 0, &m));
  {
    g_autofree char *al = g_match_info_fetch (m, 4), *mode = g_match_info_fetch (m, 5), *pfs = g_match_info_fetch (m, 7),
                    *life = g_match_info_fetch (m, 8);
    in_a = g_match_info_fetch (m, 2);
    out_a = g_match_info_fetch (m, 3);
    g_assert_cmpstr (al, ==, "aes128-sha256");
    g_assert_cmpstr (mode, ==, "tunnel");
    g_assert_cmpstr (pfs, ==, "modp2048");
    g_assert_cmpstr (life, ==, "3600");
  }
  g_clear_pointer (&m, g_match_info_unref);
  /* B's view: same cookies, SPIs crosswise, responder. */
  g_assert_true (g_regex_match (ike_re, lb[0], 0, &m));
  {
    g_autofree char *r = g_match_info_fetch (m, 9), *ic = g_match_info_fetch (m, 3);
    g_autofree char *want_ic = g_strndup (strstr (la[0], "i=") + 2, 16);
    g_assert_cmpstr (r, ==, "responder");
    g_assert_cmpstr (ic, ==, want_ic);
  }
  g_clear_pointer (&m, g_match_info_unref);
  g_assert_true (g_regex_match (esp_re, lb[1], 0, &m));
  {
    g_autofree char *in_b = g_match_info_fetch (m, 2), *out_b = g_match_info_fetch (m, 3);
    g_assert_cmpstr (in_b, ==, out_a);
    g_assert_cmpstr (out_b, ==, in_a);
  }
  net_free (net);
}

/* ---- the table ---- */

static void
test_table (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) rows = NULL;
  guint seen[256] = { 0 };

  g_assert_true (modike_ike_register_core (reg, &error));
  g_assert_no_error (error);
  g_assert_true (modike_registry_check_table (reg, &error));
  /* A second registration of the core exchanges is refused. */
  g_assert_false (modike_ike_register_core (reg, &error));
  g_assert_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_CONFLICT);
  g_clear_error (&error);

  rows = modike_registry_rows (reg);
  g_assert_cmpuint (rows->len, ==, 7 + 4 + 4 + 1 + 3);
  for (guint i = 0; i < rows->len; i++)
    {
      const ModikeFsmRow *r = g_ptr_array_index (rows, i);
      gboolean terminal = (r->flags & (MODIKE_ROW_DONE | MODIKE_ROW_P1_DONE)) != 0;

      g_assert_nonnull (r->name);
      g_assert_nonnull (r->handler);
      g_assert_true (r->exchange == MODIKE_EX_MAIN || r->exchange == MODIKE_EX_AGGRESSIVE ||
                     r->exchange == MODIKE_EX_QUICK || r->exchange == MODIKE_EX_INFO ||
                     r->exchange == MODIKE_EX_TRANSACTION);
      seen[r->exchange]++;
      /* The row is what the engine finds for its key. */
      g_assert_true (modike_registry_find_row (reg, r->exchange, r->from, r->msg_no, r->role) == r);
      g_assert_cmpuint (r->required & r->optional, ==, 0);
      g_assert_cmpuint (r->repeatable & ~(r->required | r->optional), ==, 0);
      if (r->flags & MODIKE_ROW_INITIATE)
        {
          g_assert_cmpuint (r->msg_no, ==, 0);
          g_assert_cmpuint (r->from, ==, 0);
          g_assert_cmpint (r->role, ==, MODIKE_ROLE_INITIATOR);
          g_assert_cmpuint (r->required | r->optional, ==, 0);
        }
      else
        {
          g_assert_cmpuint (r->msg_no, >=, 1);
          /* Initiators receive even messages, responders odd ones. */
          g_assert_cmpuint (r->msg_no % 2, ==, r->role == MODIKE_ROLE_RESPONDER ? 1 : 0);
          g_assert_true ((r->flags & MODIKE_ROW_ENCRYPTED) == 0 || (r->flags & MODIKE_ROW_PLAIN) == 0);
        }
      if (r->flags & MODIKE_ROW_START)
        {
          g_assert_cmpuint (r->from, ==, 0);
          g_assert_cmpuint (r->msg_no, ==, 1);
        }
      if (terminal)
        g_assert_cmpuint (r->timeout_ms, ==, 0);
      else
        {
          /* Our next message is answered by the row two messages on. */
          const ModikeFsmRow *n = modike_registry_find_row (reg, r->exchange, r->next, r->msg_no + 2, r->role);

          g_assert_nonnull (n);
          g_assert_cmpuint (r->timeout_ms, >, 0);
        }
      /* Phase 1 ends encrypted except for Aggressive Mode's optional case. */
      if ((r->flags & MODIKE_ROW_P1_DONE) && r->exchange == MODIKE_EX_MAIN)
        g_assert_true (r->flags & MODIKE_ROW_ENCRYPTED);
      if (r->exchange == MODIKE_EX_QUICK || r->exchange == MODIKE_EX_INFO || r->exchange == MODIKE_EX_TRANSACTION)
        g_assert_true ((r->flags & MODIKE_ROW_INITIATE) || (r->flags & MODIKE_ROW_ENCRYPTED));
    }
  g_assert_cmpuint (seen[MODIKE_EX_MAIN], ==, 7);
  g_assert_cmpuint (seen[MODIKE_EX_AGGRESSIVE], ==, 4);
  g_assert_cmpuint (seen[MODIKE_EX_QUICK], ==, 4);
  g_assert_cmpuint (seen[MODIKE_EX_INFO], ==, 1);
  g_assert_cmpuint (seen[MODIKE_EX_TRANSACTION], ==, 3);
}

static void
test_selectors (void)
{
  ModikeAddrRange r, back;
  ModikePortRange ports = { 53, 53 }, pback;
  guint8 proto = 0;
  g_autoptr (ModikeIdPayload) id = NULL;
  g_autoptr (GError) error = NULL;
  ModikePrefix pre;

  g_assert_true (modike_prefix_parse ("10.1.0.0/24", &pre, &error));
  g_assert_true (modike_addr_range_from_prefix (&pre, &r));
  id = qm_id_from_range (&r, 17, &ports);
  g_assert_cmpuint (id->type, ==, MODIKE_ID_IPV4_ADDR_SUBNET);
  g_assert_cmpuint (id->port, ==, 53);
  g_assert_cmpuint (g_bytes_get_size (id->data), ==, 8);
  g_assert_cmpuint (((const guint8 *) g_bytes_get_data (id->data, NULL))[7], ==, 0);
  g_assert_cmpuint (((const guint8 *) g_bytes_get_data (id->data, NULL))[6], ==, 255);
  g_assert_true (qm_range_from_id (id, &back, &proto, &pback, &error));
  assert_range_equal (&r, &back);
  g_assert_cmpuint (proto, ==, 17);
  g_assert_cmpuint (pback.from, ==, 53);
  g_assert_cmpuint (pback.to, ==, 53);
  g_clear_pointer (&id, modike_id_payload_free);

  g_assert_true (modike_prefix_parse ("2001:db8:a::/64", &pre, &error));
  g_assert_true (modike_addr_range_from_prefix (&pre, &r));
  id = qm_id_from_range (&r, 0, NULL);
  g_assert_cmpuint (id->type, ==, MODIKE_ID_IPV6_ADDR_SUBNET);
  g_assert_true (qm_range_from_id (id, &back, &proto, &pback, &error));
  assert_range_equal (&r, &back);
  g_assert_cmpuint (pback.to, ==, 65535);
  g_clear_pointer (&id, modike_id_payload_free);

  /* A host is an address; an odd range stays a range. */
  g_assert_true (modike_addr_parse ("192.0.2.7", 0, &r.from, &error));
  r.to = r.from;
  id = qm_id_from_range (&r, 0, NULL);
  g_assert_cmpuint (id->type, ==, MODIKE_ID_IPV4_ADDR);
  g_clear_pointer (&id, modike_id_payload_free);
  g_assert_true (modike_addr_parse ("192.0.2.9", 0, &r.to, &error));
  id = qm_id_from_range (&r, 0, NULL);
  g_assert_cmpuint (id->type, ==, MODIKE_ID_IPV4_ADDR_RANGE);
  g_assert_true (qm_range_from_id (id, &back, &proto, &pback, &error));
  assert_range_equal (&r, &back);
}

void
fsm_add_exchange_tests (void)
{
  g_test_add_func ("/fsm/table", test_table);
  g_test_add_func ("/fsm/selectors", test_selectors);
  for (guint i = 0; i < G_N_ELEMENTS (establish_cases); i++)
    g_test_add_data_func (establish_cases[i].path, &establish_cases[i], test_establish);
  for (guint i = 0; i < G_N_ELEMENTS (algos); i++)
    {
      g_autofree char *path = g_strdup_printf ("/fsm/algorithms/%s-%s-%s/%s%s%s/pfs-%s", algos[i].encr, algos[i].hash,
                                               algos[i].group, algos[i].esp, algos[i].integ != NULL ? "-" : "",
                                               algos[i].integ != NULL ? algos[i].integ : "", algos[i].pfs);
      g_test_add_data_func (path, &algos[i], test_algorithms);
    }
  g_test_add_func ("/fsm/ipv6", test_ipv6);
  g_test_add_func ("/fsm/transport", test_transport);
  g_test_add_func ("/fsm/two-policies", test_two_policies);
  g_test_add_func ("/fsm/status", test_status);
}
