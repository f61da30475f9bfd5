/* The natt plugin's descriptor: the only exported symbol. */
#include "natt.h"

static const char *const natt_provides[] = { "nat-traversal", NULL };

static const ModikePluginDescriptor natt_descriptor = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "natt",
  .version = "1.0",
  .description = "NAT traversal (RFC 3947/3948, drafts 02/03): negotiation, keepalives, NAT-OA",
  .provides = natt_provides,
  .depends = NULL,
  .init = natt_init,
  .fini = natt_fini,
};

MODIKE_PLUGIN_DEFINE (natt_descriptor)
