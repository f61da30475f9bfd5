/* The modike plugin SDK: include this one header. */
#pragma once

#include <modike/protocol.h>
#include <modike/names.h>
#include <modike/reader.h>
#include <modike/addr.h>
#include <modike/bytes.h>
#include <modike/payload.h>
#include <modike/message.h>
#include <modike/crypto.h>
#include <modike/spd.h>
#include <modike/sad.h>
#include <modike/datapath.h>
#include <modike/config.h>
#include <modike/plugin.h>
#include <modike/exchange.h>
#include <modike/registry.h>
#include <modike/ike.h>
#include <modike/auth-method.h>
#include <modike/cfg-attr.h>
#include <modike/transaction.h>
#include <modike/sa-result.h>
#include <modike/log.h>
#include <modike/host.h>
