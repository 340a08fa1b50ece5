/* RingBuffer and UserRingBuffer readers/writers. */

static int
pybpf_ringbuf_init(PyObject *m, pybpf_state *st)
{
    return 0;
}
