/* A loadable module that is not a plugin: no modike_plugin_descriptor. */
int tp_not_a_plugin (void);

int
tp_not_a_plugin (void)
{
  return 42;
}
