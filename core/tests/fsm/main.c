/* Suite fsm: the engine with two peers in one process (mock clock and
 * network); the harness is in harness.c, the cases in test-*.c by topic. */
#include "harness.h"

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  fsm_add_exchange_tests ();
  fsm_add_fault_tests ();
  fsm_add_lifecycle_tests ();
  fsm_add_plugin_hook_tests ();
  fsm_add_datapath_tests ();
  fsm_add_padding_tests ();
  fsm_add_plugin_result_tests ();
  fsm_add_inflight_tests ();
  fsm_add_plugin_exchange_tests ();
  fsm_add_transaction_tests ();
  fsm_add_plugin_service_tests ();
  fsm_add_client_tests ();
  fsm_add_cert_tests ();
  fsm_add_host_tests ();
  fsm_add_hybrid_tests ();
  fsm_add_instance_tests ();
  fsm_add_halfopen_tests ();
  fsm_add_offload_tests ();
  return g_test_run ();
}
