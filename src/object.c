/* Object: ELF objects opened and loaded through libbpf. */

static int
pybpf_object_init(PyObject *m, pybpf_state *st)
{
    return 0;
}
