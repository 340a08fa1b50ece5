/* Feature probes: thin wrappers over libbpf_probe_bpf_*.  Each returns True/False, or raises
 * with the errno when the probe itself could not run (EPERM without CAP_BPF, say). */

static PyObject *
pybpf_probe_result(PyObject *mod, int r, const char *op)
{
    if (r < 0)
        return pybpf_err(pybpf_state_from_module(mod), -r, op, NULL);
    return PyBool_FromLong(r > 0);
}

static PyObject *
pybpf_probe_map_type(PyObject *mod, PyObject *arg)
{
    long t = PyLong_AsLong(arg);
    int r;

    if (t == -1 && PyErr_Occurred())
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = libbpf_probe_bpf_map_type((enum bpf_map_type)t, NULL);
    Py_END_ALLOW_THREADS
    return pybpf_probe_result(mod, r, "probe map type");
}

static PyObject *
pybpf_probe_prog_type(PyObject *mod, PyObject *arg)
{
    long t = PyLong_AsLong(arg);
    int r;

    if (t == -1 && PyErr_Occurred())
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = libbpf_probe_bpf_prog_type((enum bpf_prog_type)t, NULL);
    Py_END_ALLOW_THREADS
    return pybpf_probe_result(mod, r, "probe program type");
}

static PyObject *
pybpf_probe_helper(PyObject *mod, PyObject *args)
{
    int pt, helper, r;

    if (!PyArg_ParseTuple(args, "ii:probe_helper", &pt, &helper))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = libbpf_probe_bpf_helper((enum bpf_prog_type)pt, (enum bpf_func_id)helper, NULL);
    Py_END_ALLOW_THREADS
    return pybpf_probe_result(mod, r, "probe helper");
}

static PyMethodDef pybpf_probe_functions[] = {
    {"probe_map_type", pybpf_probe_map_type, METH_O,
     PyDoc_STR("Return whether the kernel can create maps of this type.")},
    {"probe_prog_type", pybpf_probe_prog_type, METH_O,
     PyDoc_STR("Return whether the kernel can load programs of this type.")},
    {"probe_helper", pybpf_probe_helper, METH_VARARGS,
     PyDoc_STR("probe_helper(prog_type, helper_id): whether programs of that type may call "
               "the helper.")},
    {NULL, NULL, 0, NULL},
};

static int
pybpf_probes_init(PyObject *m, pybpf_state *st)
{
    return PyModule_AddFunctions(m, pybpf_probe_functions);
}
