/* Program: raw loading, adoption, info, test runs. */

static int
pybpf_program_init(PyObject *m, pybpf_state *st)
{
    return 0;
}
