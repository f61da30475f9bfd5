/* resolv.conf, the DNS back end when systemd-resolved does not run. The
 * file is always rewritten from the original (as it was before modike
 * touched it) plus every active adapter's servers and domains, so
 * adapters can come and go in any order and the last one out puts the
 * original back byte for byte. The original and the adapters' parts are
 * in a state file, written before resolv.conf changes: a modiked that dies
 * leaves it behind, and the next one restores from it. A running modiked
 * holds a lock next to it, so that another one (or `modiked --check`)
 * never takes a live state for a dead one's. */
#include "dns.h"
#include "tun.h"  /* tun_nl_set_error */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* libc reads this many nameserver lines and ignores the rest. */
#define RC_MAXNS 3
#define RC_GROUP_ORIGINAL "original"
#define RC_GROUP_ADAPTER "adapter "

typedef struct {
  char *ifname;
  char **servers;
  char **domains;
} RcEntry;

struct _TunResolvConf {
  char *path;
  char *state_dir;
  char *state_path;
  char *lock_path;
  int lock_fd;            /* -1: not held */
  gboolean have_original; /* from the first set to the last clear */
  GBytes *original;       /* NULL (with have_original): there was no file */
  GPtrArray *entries;     /* RcEntry, in the order the adapters came */
};

static void
entry_free (gpointer p)
{
  RcEntry *e = p;

  g_free (e->ifname);
  g_strfreev (e->servers);
  g_strfreev (e->domains);
  g_free (e);
}

static gpointer
entry_copy (gconstpointer p, gpointer unused)
{
  const RcEntry *e = p;
  RcEntry *c = g_new0 (RcEntry, 1);

  c->ifname = g_strdup (e->ifname);
  c->servers = g_strdupv (e->servers);
  c->domains = g_strdupv (e->domains);
  return c;
}

TunResolvConf *
tun_resolvconf_new (const char *path, const char *state_dir)
{
  TunResolvConf *rc = g_new0 (TunResolvConf, 1);

  rc->path = g_strdup (path);
  rc->state_dir = g_strdup (state_dir);
  rc->state_path = g_build_filename (state_dir, TUN_DNS_STATE_FILE, NULL);
  rc->lock_path = g_build_filename (state_dir, TUN_DNS_LOCK_FILE, NULL);
  rc->lock_fd = -1;
  rc->entries = g_ptr_array_new_with_free_func (entry_free);
  return rc;
}

static void
lock_release (TunResolvConf *rc)
{
  if (rc->lock_fd >= 0)
    close (rc->lock_fd);
  rc->lock_fd = -1;
}

void
tun_resolvconf_free (TunResolvConf *rc)
{
  if (rc == NULL)
    return;
  lock_release (rc);
  g_clear_pointer (&rc->original, g_bytes_unref);
  g_ptr_array_unref (rc->entries);
  g_free (rc->path);
  g_free (rc->state_dir);
  g_free (rc->state_path);
  g_free (rc->lock_path);
  g_free (rc);
}

const char *
tun_resolvconf_get_path (TunResolvConf *rc)
{
  return rc->path;
}

const char *
tun_resolvconf_get_state_dir (TunResolvConf *rc)
{
  return rc->state_dir;
}

gboolean
tun_resolvconf_active (TunResolvConf *rc)
{
  return rc->entries->len > 0;
}

/* ---- files ---- */

static gboolean
lock_take (TunResolvConf *rc, GError **error)
{
  int fd;

  if (rc->lock_fd >= 0)
    return TRUE;
  if (g_mkdir_with_parents (rc->state_dir, 0755) != 0)
    {
      tun_nl_set_error (error, errno, NULL, "cannot create the state directory %s", rc->state_dir);
      return FALSE;
    }
  fd = open (rc->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      tun_nl_set_error (error, errno, NULL, "cannot open %s", rc->lock_path);
      return FALSE;
    }
  if (flock (fd, LOCK_EX | LOCK_NB) != 0)
    {
      int err = errno;

      close (fd);
      if (err == EWOULDBLOCK)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                     "%s is held by another running modiked (give each its own <tun state-dir> and resolv-conf)",
                     rc->lock_path);
      else
        tun_nl_set_error (error, err, NULL, "cannot lock %s", rc->lock_path);
      return FALSE;
    }
  rc->lock_fd = fd;
  return TRUE;
}

static gboolean
write_all (int fd, const char *data, gsize len)
{
  while (len > 0)
    {
      ssize_t n = write (fd, data, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      data += n;
      len -= (gsize) n;
    }
  return TRUE;
}

static gboolean
write_in_place (const char *path, const char *data, gsize len, mode_t mode, GError **error)
{
  g_autofree char *before = NULL;
  gsize before_len = 0;
  gboolean ok;
  int fd, err;

  /* To put back should the write stop half way (a full disk). */
  if (!g_file_get_contents (path, &before, &before_len, NULL))
    g_clear_pointer (&before, g_free);
  fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, mode);
  if (fd < 0)
    {
      tun_nl_set_error (error, errno, NULL, "cannot write %s", path);
      return FALSE;
    }
  /* Written over, then cut: the file is never empty on the way. */
  ok = write_all (fd, data, len) && ftruncate (fd, (off_t) len) == 0;
  err = errno;
  if (!ok && before != NULL
      && (lseek (fd, 0, SEEK_SET) != 0 || !write_all (fd, before, before_len)
          || ftruncate (fd, (off_t) before_len) != 0))
    g_warning ("%s: the old content is not back after a failed write: %s", path, g_strerror (errno));
  close (fd);
  if (!ok)
    tun_nl_set_error (error, err, NULL, "cannot write %s", path);
  return ok;
}

/* Replaces path's content: a temporary file in its directory (the mode of
 * the file it replaces) renamed over it, so readers see the old or the new
 * file. In place instead when path is a symlink (replacing the link would
 * break whatever points it elsewhere) or when the rename says EBUSY: a
 * bind mount, as `ip netns exec` puts /etc/netns/NS/resolv.conf over it. */
static gboolean
replace_file (const char *path, const char *data, gsize len, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  g_autofree char *tmp = NULL;
  struct stat st;
  mode_t mode = 0644;
  gboolean ok;
  int fd, err;

  if (stat (path, &st) == 0)
    mode = st.st_mode & 07777;
  if (lstat (path, &st) == 0 && S_ISLNK (st.st_mode))
    return write_in_place (path, data, len, mode, error);

  tmp = g_strdup_printf ("%s/.%s.modike-XXXXXX", dir, base);
  fd = g_mkstemp_full (tmp, O_RDWR | O_CLOEXEC, mode);
  if (fd < 0)
    {
      tun_nl_set_error (error, errno, NULL, "cannot write %s (a temporary file in %s)", path, dir);
      return FALSE;
    }
  ok = write_all (fd, data, len) && fchmod (fd, mode) == 0 && fsync (fd) == 0;
  err = errno;
  close (fd);
  if (ok && rename (tmp, path) == 0)
    return TRUE;
  if (ok)
    err = errno;
  unlink (tmp);
  if (ok && err == EBUSY)
    {
      g_debug ("%s is a mount point: rewriting it in place", path);
      return write_in_place (path, data, len, mode, error);
    }
  tun_nl_set_error (error, err, NULL, "cannot write %s", path);
  return FALSE;
}

/* path had no file: what a symlink there points to goes, the link stays. */
static gboolean
remove_file (const char *path, GError **error)
{
  g_autofree char *target = g_strdup (path);

  for (guint i = 0; i < 8; i++)
    {
      g_autofree char *link = g_file_read_link (target, NULL);
      g_autofree char *dir = NULL;

      if (link == NULL)
        break;
      dir = g_path_get_dirname (target);
      g_free (target);
      target = g_path_is_absolute (link) ? g_steal_pointer (&link) : g_build_filename (dir, link, NULL);
    }
  if (unlink (target) != 0 && errno != ENOENT)
    {
      tun_nl_set_error (error, errno, NULL, "cannot remove %s", target);
      return FALSE;
    }
  return TRUE;
}

/* *out NULL: no file there. */
static gboolean
read_file (const char *path, GBytes **out, GError **error)
{
  g_autoptr (GError) local = NULL;
  char *data = NULL;
  gsize len = 0;

  *out = NULL;
  if (g_file_get_contents (path, &data, &len, &local))
    {
      *out = g_bytes_new_take (data, len);
      return TRUE;
    }
  if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    return TRUE;
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

static gboolean
has_marker (GBytes *content)
{
  gsize len = 0;
  const char *p = content != NULL ? g_bytes_get_data (content, &len) : NULL;
  const gsize mlen = strlen (TUN_DNS_MARKER);

  for (gsize at = 0; p != NULL && at < len;)
    {
      const char *nl = memchr (p + at, '\n', len - at);
      gsize end = nl != NULL ? (gsize) (nl - p) : len;

      if (end - at >= mlen && memcmp (p + at, TUN_DNS_MARKER, mlen) == 0)
        return TRUE;
      at = end + 1;
    }
  return FALSE;
}

/* ---- the file we write ---- */

static void
add_unique (GPtrArray *list, const char *s, gboolean nocase)
{
  for (guint i = 0; i < list->len; i++)
    if (nocase ? g_ascii_strcasecmp (list->pdata[i], s) == 0 : strcmp (list->pdata[i], s) == 0)
      return;
  g_ptr_array_add (list, (gpointer) s);
}

/* The words of a line, blanks dropped. */
static char **
words (const char *line)
{
  g_auto (GStrv) all = g_strsplit_set (line, " \t\r", -1);
  GStrvBuilder *b = g_strv_builder_new ();
  char **out;

  for (guint i = 0; all[i] != NULL; i++)
    if (all[i][0] != '\0')
      g_strv_builder_add (b, all[i]);
  out = g_strv_builder_end (b);
  g_strv_builder_unref (b);
  return out;
}

/* The marker naming the adapters, our servers then the original ones up
 * to libc's three, one search line with our domains then the original's
 * (its last search or domain line counts, as in libc), then every other
 * line of the original in its order. */
static GString *
compose (TunResolvConf *rc)
{
  GString *out = g_string_new (TUN_DNS_MARKER " for");
  g_autoptr (GPtrArray) servers = g_ptr_array_new ();
  g_autoptr (GPtrArray) search = g_ptr_array_new ();
  g_autoptr (GString) rest = g_string_new (NULL);
  g_auto (GStrv) lines = NULL;
  g_auto (GStrv) theirs = NULL;
  guint n_ns = 0;

  for (guint i = 0; i < rc->entries->len; i++)
    {
      const RcEntry *e = rc->entries->pdata[i];

      g_string_append_printf (out, " %s", e->ifname);
      for (guint k = 0; e->servers[k] != NULL; k++)
        add_unique (servers, e->servers[k], FALSE);
      for (guint k = 0; e->domains[k] != NULL; k++)
        add_unique (search, e->domains[k], TRUE);
    }
  g_string_append_printf (out, "; the original comes back when they go (kept in %s)\n", rc->state_path);
  for (guint i = 0; i < servers->len; i++, n_ns++)
    g_string_append_printf (out, "nameserver %s\n", (const char *) servers->pdata[i]);

  if (rc->original != NULL)
    {
      gsize len;
      const char *data = g_bytes_get_data (rc->original, &len);
      g_autofree char *text = g_strndup (data, len);

      lines = g_strsplit (text, "\n", -1);
    }
  for (guint i = 0; lines != NULL && lines[i] != NULL; i++)
    {
      g_auto (GStrv) w = words (lines[i]);

      if (lines[i + 1] == NULL && lines[i][0] == '\0')
        break;  /* after the last newline */
      if (w[0] != NULL && strcmp (w[0], "nameserver") == 0)
        {
          gboolean ours = FALSE;

          for (guint k = 0; w[1] != NULL && k < servers->len; k++)
            ours = ours || strcmp (servers->pdata[k], w[1]) == 0;
          if (!ours && n_ns < RC_MAXNS)
            {
              g_string_append_printf (out, "%s\n", lines[i]);
              n_ns++;
            }
        }
      else if (w[0] != NULL && (strcmp (w[0], "search") == 0 || strcmp (w[0], "domain") == 0))
        {
          g_strfreev (theirs);
          theirs = g_strdupv (w + 1);
        }
      else
        g_string_append_printf (rest, "%s\n", lines[i]);
    }
  for (guint k = 0; theirs != NULL && theirs[k] != NULL; k++)
    add_unique (search, theirs[k], TRUE);
  if (search->len > 0)
    {
      g_string_append (out, "search");
      for (guint k = 0; k < search->len; k++)
        g_string_append_printf (out, " %s", (const char *) search->pdata[k]);
      g_string_append_c (out, '\n');
    }
  g_string_append_len (out, rest->str, (gssize) rest->len);
  return out;
}

/* ---- the state file ---- */

static gboolean
state_write (TunResolvConf *rc, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree char *data = NULL;
  gsize len;

  g_key_file_set_string (kf, RC_GROUP_ORIGINAL, "path", rc->path);
  g_key_file_set_boolean (kf, RC_GROUP_ORIGINAL, "absent", rc->original == NULL);
  if (rc->original != NULL)
    {
      gsize olen;
      const guint8 *odata = g_bytes_get_data (rc->original, &olen);
      g_autofree char *b64 = g_base64_encode (odata, olen);

      g_key_file_set_string (kf, RC_GROUP_ORIGINAL, "content", b64);
    }
  g_key_file_set_integer (kf, RC_GROUP_ORIGINAL, "pid", (gint) getpid ());
  for (guint i = 0; i < rc->entries->len; i++)
    {
      const RcEntry *e = rc->entries->pdata[i];
      g_autofree char *group = g_strconcat (RC_GROUP_ADAPTER, e->ifname, NULL);

      g_key_file_set_string_list (kf, group, "servers", (const char *const *) e->servers,
                                  g_strv_length (e->servers));
      g_key_file_set_string_list (kf, group, "domains", (const char *const *) e->domains,
                                  g_strv_length (e->domains));
    }
  data = g_key_file_to_data (kf, &len, NULL);
  if (g_mkdir_with_parents (rc->state_dir, 0755) != 0)
    {
      tun_nl_set_error (error, errno, NULL, "cannot create the state directory %s", rc->state_dir);
      return FALSE;
    }
  return g_file_set_contents_full (rc->state_path, data, (gssize) len, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}

/* Puts content (NULL: no file) back at path unless someone else has
 * rewritten it since (no marker): theirs stays. */
static gboolean
restore (const char *path, GBytes *content, GError **error)
{
  g_autoptr (GBytes) now = NULL;
  gsize len = 0;
  const char *data;

  if (!read_file (path, &now, error))
    return FALSE;
  if (!has_marker (now))
    {
      g_message ("%s was rewritten by someone else since modike changed it: left as it is", path);
      return TRUE;
    }
  if (content == NULL)
    return remove_file (path, error);
  data = g_bytes_get_data (content, &len);
  return replace_file (path, data != NULL ? data : "", len, error);
}

/* With the lock held: a state file is a dead modiked's; its original goes
 * back where it came from (the path it names), then the state goes. */
static gboolean
recover_locked (TunResolvConf *rc, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local = NULL;
  g_autoptr (GBytes) content = NULL;
  g_autofree char *path = NULL;
  g_autofree char *b64 = NULL;
  g_auto (GStrv) groups = NULL;
  g_autoptr (GString) names = g_string_new (NULL);
  gboolean absent;
  gint pid;

  if (!g_key_file_load_from_file (kf, rc->state_path, G_KEY_FILE_NONE, &local))
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return TRUE;
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "cannot read %s: %s", rc->state_path, local->message);
      return FALSE;
    }
  path = g_key_file_get_string (kf, RC_GROUP_ORIGINAL, "path", NULL);
  absent = g_key_file_get_boolean (kf, RC_GROUP_ORIGINAL, "absent", NULL);
  b64 = g_key_file_get_string (kf, RC_GROUP_ORIGINAL, "content", NULL);
  pid = g_key_file_get_integer (kf, RC_GROUP_ORIGINAL, "pid", NULL);
  if (path == NULL || !g_path_is_absolute (path) || (!absent && b64 == NULL))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s is damaged (no original): put the right resolv.conf back and remove it", rc->state_path);
      return FALSE;
    }
  if (!absent)
    {
      gsize len = 0;
      guchar *raw = g_base64_decode (b64, &len);

      content = g_bytes_new_take (raw, len);
    }
  groups = g_key_file_get_groups (kf, NULL);
  for (guint i = 0; groups[i] != NULL; i++)
    if (g_str_has_prefix (groups[i], RC_GROUP_ADAPTER))
      g_string_append_printf (names, " %s", groups[i] + strlen (RC_GROUP_ADAPTER));
  if (!restore (path, content, error))
    {
      g_prefix_error (error, "restoring the original from %s: ", rc->state_path);
      return FALSE;
    }
  g_message ("%s: the original is back from %s, left by modiked %d, which stopped with DNS set (adapters:%s)",
             path, rc->state_path, pid, names->len > 0 ? names->str : " none");
  if (unlink (rc->state_path) != 0 && errno != ENOENT)
    {
      tun_nl_set_error (error, errno, NULL, "cannot remove %s", rc->state_path);
      return FALSE;
    }
  return TRUE;
}

void
tun_resolvconf_recover (TunResolvConf *rc)
{
  g_autoptr (GError) error = NULL;

  if (rc->lock_fd >= 0 || !g_file_test (rc->state_path, G_FILE_TEST_EXISTS))
    return;
  if (!lock_take (rc, &error))
    {
      g_message ("%s is not restored from %s: %s", rc->path, rc->state_path, error->message);
      return;
    }
  if (!recover_locked (rc, &error))
    g_warning ("%s", error->message);
  lock_release (rc);
}

/* ---- set and clear ---- */

/* The state from the first set to the last clear, to go back to when a
 * change fails half way. */
typedef struct {
  gboolean have_original;
  GBytes *original;
  GPtrArray *entries;
} RcSnapshot;

static void
snapshot_take (TunResolvConf *rc, RcSnapshot *s)
{
  s->have_original = rc->have_original;
  s->original = rc->original != NULL ? g_bytes_ref (rc->original) : NULL;
  s->entries = g_ptr_array_copy (rc->entries, entry_copy, NULL);
  g_ptr_array_set_free_func (s->entries, entry_free);
}

static void
snapshot_put_back (TunResolvConf *rc, RcSnapshot *s)
{
  g_clear_pointer (&rc->original, g_bytes_unref);
  rc->original = g_steal_pointer (&s->original);
  rc->have_original = s->have_original;
  g_ptr_array_unref (rc->entries);
  rc->entries = g_steal_pointer (&s->entries);
}

static void
snapshot_clear (RcSnapshot *s)
{
  g_clear_pointer (&s->original, g_bytes_unref);
  g_clear_pointer (&s->entries, g_ptr_array_unref);
}

static gint
find_entry (TunResolvConf *rc, const char *ifname)
{
  for (guint i = 0; i < rc->entries->len; i++)
    if (strcmp (((RcEntry *) rc->entries->pdata[i])->ifname, ifname) == 0)
      return (gint) i;
  return -1;
}

static void
forget_original (TunResolvConf *rc)
{
  rc->have_original = FALSE;
  g_clear_pointer (&rc->original, g_bytes_unref);
  lock_release (rc);
}

/* The original as resolv.conf is now, at the first set; later, what
 * someone else wrote over ours becomes the original. */
static gboolean
take_original (TunResolvConf *rc, GError **error)
{
  g_autoptr (GBytes) now = NULL;

  if (!rc->have_original)
    {
      /* A dead modiked's state first: its original is the real one. */
      if (!lock_take (rc, error) || !recover_locked (rc, error) || !read_file (rc->path, &now, error))
        return FALSE;
      if (has_marker (now))
        g_warning ("%s carries modike's marker but no state file says what it was before: taking it as it is "
                   "for the original", rc->path);
      rc->original = g_steal_pointer (&now);
      rc->have_original = TRUE;
      return TRUE;
    }
  if (!read_file (rc->path, &now, error))
    return FALSE;
  if (!has_marker (now))
    {
      g_message ("%s was rewritten by someone else while modike's DNS was in it: that is the original from now on",
                 rc->path);
      g_clear_pointer (&rc->original, g_bytes_unref);
      rc->original = g_steal_pointer (&now);
    }
  return TRUE;
}

static gboolean
write_resolv_conf (TunResolvConf *rc, GError **error)
{
  g_autoptr (GString) text = compose (rc);

  return replace_file (rc->path, text->str, text->len, error);
}

gboolean
tun_resolvconf_set (TunResolvConf *rc, const char *ifname, const char *const *servers, const char *const *domains,
                    GError **error)
{
  RcSnapshot before;
  RcEntry *e;
  gint at;

  g_return_val_if_fail (rc != NULL && ifname != NULL && servers != NULL && domains != NULL, FALSE);
  snapshot_take (rc, &before);
  if (!take_original (rc, error))
    goto fail;
  e = g_new0 (RcEntry, 1);
  e->ifname = g_strdup (ifname);
  e->servers = g_strdupv ((char **) servers);
  e->domains = g_strdupv ((char **) domains);
  at = find_entry (rc, ifname);
  if (at >= 0)
    {
      entry_free (rc->entries->pdata[at]);
      rc->entries->pdata[at] = e;
    }
  else
    g_ptr_array_add (rc->entries, e);
  /* The state first: should we die between the two, the next start has
   * the original. */
  if (!state_write (rc, error))
    goto fail;
  if (!write_resolv_conf (rc, error))
    {
      g_autoptr (GError) undo = NULL;

      if (!before.have_original)
        {
          if (unlink (rc->state_path) != 0)
            g_warning ("cannot remove %s: %s", rc->state_path, g_strerror (errno));
        }
      else
        {
          snapshot_put_back (rc, &before);
          if (!state_write (rc, &undo))
            g_warning ("%s", undo->message);
        }
      goto fail;
    }
  g_debug ("%s: %s's DNS in it (%u adapter%s)", rc->path, ifname, rc->entries->len, rc->entries->len == 1 ? "" : "s");
  snapshot_clear (&before);
  return TRUE;

fail:
  if (before.entries != NULL)
    snapshot_put_back (rc, &before);
  if (!rc->have_original)
    lock_release (rc);
  snapshot_clear (&before);
  return FALSE;
}

void
tun_resolvconf_clear (TunResolvConf *rc, const char *ifname)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) now = NULL;
  gint at;

  g_return_if_fail (rc != NULL && ifname != NULL);
  at = find_entry (rc, ifname);
  if (at < 0)
    return;
  g_ptr_array_remove_index (rc->entries, (guint) at);
  if (!read_file (rc->path, &now, &error))
    {
      /* Unreadable: the state stays for the next start to restore. */
      g_warning ("%s: %s's DNS not taken out: %s", rc->path, ifname, error->message);
      if (rc->entries->len == 0)
        forget_original (rc);
      return;
    }
  if (!has_marker (now))
    {
      g_message ("%s was rewritten by someone else while %s's DNS was in it: left as it is", rc->path, ifname);
      g_clear_pointer (&rc->original, g_bytes_unref);
      rc->original = g_steal_pointer (&now);
    }
  else if (rc->entries->len > 0)
    {
      if (!state_write (rc, &error) || !write_resolv_conf (rc, &error))
        g_warning ("%s: %s's DNS not taken out: %s", rc->path, ifname, error->message);
      return;
    }
  else if (!restore (rc->path, rc->original, &error))
    {
      g_warning ("%s: the original is not back (%s); the next start restores it from %s", rc->path, error->message,
                 rc->state_path);
      forget_original (rc);
      return;
    }
  /* Someone else's file with adapters left: only the state changes. */
  if (rc->entries->len > 0)
    {
      if (!state_write (rc, &error))
        g_warning ("%s", error->message);
      return;
    }
  if (unlink (rc->state_path) != 0 && errno != ENOENT)
    g_warning ("cannot remove %s: %s", rc->state_path, g_strerror (errno));
  forget_original (rc);
}
