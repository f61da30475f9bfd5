/* The core's (and tests') view of the SPD beyond the SDK. */
#pragma once

#include <modike/spd.h>

/* The next id modike_spd_add tries: lets a test reach the wrap. */
void spd_set_next_id (ModikeSpd *spd, guint32 next_id);
