/* Map: the fd-owning map type and its raw operations. */

static int
pybpf_map_init(PyObject *m, pybpf_state *st)
{
    return 0;
}
