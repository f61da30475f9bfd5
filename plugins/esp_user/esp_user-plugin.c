/* The esp_user plugin's descriptor: the only exported symbol. */
#include "datapath.h"

static const char *const esp_user_provides[] = { "datapath", NULL };

static const ModikePluginDescriptor esp_user_descriptor = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "esp_user",
  .version = "1.0",
  .description = "ESP (RFC 4303, RFC 3948) in user space: worker threads, SPD/SAD, acquire",
  .provides = esp_user_provides,
  .depends = NULL,
  .init = esp_user_init,
  .fini = NULL, /* datapath_free, the plugin data's destroy, does the work */
};

MODIKE_PLUGIN_DEFINE (esp_user_descriptor)
