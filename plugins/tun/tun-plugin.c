/* The tun plugin's descriptor: the only exported symbol. */
#include "tun.h"

static const char *const tun_provides[] = { "os-adapter", NULL };

static const ModikePluginDescriptor tun_descriptor = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "tun",
  .version = "1.0",
  .description = "Linux OS adapter: TUN interfaces configured over rtnetlink",
  .provides = tun_provides,
  .depends = NULL,
  .init = tun_init,
  .fini = NULL,
};

MODIKE_PLUGIN_DEFINE (tun_descriptor)
