/* The xauth plugin's descriptor: the only exported symbol. */
#include "xauth.h"

static const char *const xauth_provides[] = { "xauth", NULL };

static const ModikePluginDescriptor xauth_descriptor = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "xauth",
  .version = "1.0",
  .description = "extended authentication (draft-ietf-ipsec-isakmp-xauth-06) over the transaction exchange",
  .provides = xauth_provides,
  .depends = NULL,
  .init = xauth_init,
  .fini = NULL,
};

MODIKE_PLUGIN_DEFINE (xauth_descriptor)
