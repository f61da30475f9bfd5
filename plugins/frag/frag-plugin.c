/* The frag plugin's descriptor: the only exported symbol. */
#include "frag.h"

static const char *const frag_provides[] = { "ike-fragmentation", NULL };

static const ModikePluginDescriptor frag_descriptor = {
  MODIKE_PLUGIN_DESCRIPTOR_INIT,
  .name = "frag",
  .version = "1.0",
  .description = "IKEv1 fragmentation (FRAGMENTATION vendor ID, payload 132)",
  .provides = frag_provides,
  .depends = NULL,
  .init = frag_init,
  .fini = frag_fini,
};

MODIKE_PLUGIN_DEFINE (frag_descriptor)
