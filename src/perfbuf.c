/* PerfBuffer reader. */

static int
pybpf_perfbuf_init(PyObject *m, pybpf_state *st)
{
    return 0;
}
