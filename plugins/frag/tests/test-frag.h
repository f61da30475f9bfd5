/* Suite frag: shared by its two files. */
#pragma once

#include "frag.h"

void frag_add_engine_tests (void);
