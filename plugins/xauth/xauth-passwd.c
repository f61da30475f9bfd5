/* modike-xauth-passwd USER: reads a password (one line) from standard
 * input and prints the users-file line for it, with a fresh salt. */
#include "xauth.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>

int
main (int argc, char **argv)
{
  char line[XAUTH_MAX_VALUE + 2];
  g_autoptr (GError) error = NULL;
  g_autofree char *entry = NULL;
  gsize n;

  if (argc != 2)
    {
      fprintf (stderr, "usage: %s USER < password-file   (prints a users-file line)\n", argv[0]);
      return 2;
    }
  if (fgets (line, sizeof line, stdin) == NULL)
    {
      fprintf (stderr, "%s: no password on standard input\n", argv[0]);
      return 1;
    }
  n = strcspn (line, "\r\n");
  if (n == 0 || n > XAUTH_MAX_VALUE)
    {
      fprintf (stderr, "%s: password empty or longer than %u bytes\n", argv[0], XAUTH_MAX_VALUE);
      gnutls_memset (line, 0, sizeof line);
      return 1;
    }
  entry = xauth_users_make_entry (argv[1], (const guint8 *) line, n, XAUTH_PBKDF2_ITERATIONS, &error);
  gnutls_memset (line, 0, sizeof line);
  if (entry == NULL)
    {
      fprintf (stderr, "%s: %s\n", argv[0], error->message);
      return 1;
    }
  printf ("%s\n", entry);
  return 0;
}
