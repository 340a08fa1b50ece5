/* Link: attachments and their lifetime. */

static int
pybpf_link_init(PyObject *m, pybpf_state *st)
{
    return 0;
}
