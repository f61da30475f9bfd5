/* The modecfg plugin's descriptor: the only exported symbol. */
#include "modecfg.h"

static const char *const modecfg_provides[] = { "modecfg", NULL };

static const ModikePluginDescriptor modecfg_descriptor = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "modecfg",
  .version = "1.0",
  .description = "mode config (draft-dukes-ike-mode-cfg-02, Cisco Unity) over the transaction exchange: "
                 "client and gateway with address pools",
  .provides = modecfg_provides,
  .depends = NULL,
  .init = modecfg_init,
  .fini = NULL,
};

MODIKE_PLUGIN_DEFINE (modecfg_descriptor)
