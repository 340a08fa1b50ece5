/* BTF: type information. */

static int
pybpf_btf_init(PyObject *m, pybpf_state *st)
{
    return 0;
}
