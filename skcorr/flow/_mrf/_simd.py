"""Vector kernels of the dual-layer BP sweep, written as LLVM vector IR (numba intrinsics).

Each kernel keeps ``nvec`` vectors of ``LANES`` float32 running minima in registers while
it walks its inputs once: one message (a 1-D transform) or one data-factor message (a
minimum over the rows of a node's cost matrix). ``nvec`` is a compile-time constant (an
integer literal at the call site), so the lanes unroll into straight vector code. Left to
itself LLVM vectorises such loops over the *inputs*, with a horizontal reduction per
output, or keeps the minima in memory, where every input waits on a store; written out
here, a message's input costs one broadcast and two vector operations (``fmuladd``,
``minnum``) per vector of outputs, the squared distances coming from a table.

Message and belief rows are padded to a multiple of ``LANES`` (zeros in the messages);
the cost rows are read as they are, the lanes past a row's end masked to ``+inf``. The
arithmetic is that of the scalar kernels these replaced, operation for operation
(``fmuladd`` is the fused form LLVM chose there, ``minnum`` is exact in any order), so
the results are the same bit for bit.

numba caches a function by its own source file only: after editing this module, clear
the cache of ``_dual`` (``__pycache__/_dual.*.nb*``), whose functions inline these.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 8

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_VEC = ir.VectorType(_F32, LANES)
_INF = float("inf")


def padded(n):
    """``n`` rounded up to a multiple of :data:`LANES`."""
    return -(-n // LANES) * LANES


def _call(builder, name, *args):
    """``name`` (an LLVM intrinsic overloaded on one float type) applied to ``args``."""
    ty = args[0].type
    suffix = f"v{ty.count}f32" if isinstance(ty, ir.VectorType) else "f32"
    fn = cgutils.get_or_insert_function(builder.module,
                                        ir.FunctionType(ty, [a.type for a in args]),
                                        f"{name}.{suffix}")
    # No NaN ever arises: "nnan" lets minnum and maxnum be single instructions.
    return builder.call(fn, args, fastmath=("nnan", "nsz"))


def _splat(builder, value):
    vec = builder.insert_element(ir.Constant(ir.VectorType(value.type, LANES), ir.Undefined),
                                 value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(_I32, LANES),
                                                        [0] * LANES))


def _vptr(builder, base, offset):
    return builder.bitcast(builder.gep(base, [offset]), _VEC.as_pointer())


def _vload(builder, base, offset):
    return builder.load(_vptr(builder, base, offset), align=4, typ=_VEC)


def _vload_masked(builder, base, offset, n):
    """The vector at ``base + offset``, lanes at ``offset + t >= n`` read as ``+inf``
    (and not read at all: rows of unpadded arrays end there)."""
    mask = builder.icmp_signed("<", _lane_index(builder, offset), _splat(builder, n))
    fnty = ir.FunctionType(_VEC, [_VEC.as_pointer(), _I32, mask.type, _VEC])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.masked.load.v8f32.p0")
    return builder.call(fn, [_vptr(builder, base, offset), ir.Constant(_I32, 4), mask,
                             ir.Constant(_VEC, [_INF] * LANES)])


def _vstore(builder, vec, base, offset):
    builder.store(vec, _vptr(builder, base, offset), align=4)


def _reduce(builder, vec, name):
    """Horizontal ``minnum`` or ``maxnum`` of a vector, as a scalar."""
    width = LANES
    while width > 1:
        width //= 2
        upper = builder.shuffle_vector(vec, vec, ir.Constant(
            ir.VectorType(_I32, LANES), list(range(width, 2 * width)) + [0] * (LANES - width)))
        vec = _call(builder, name, vec, upper)
    return builder.extract_element(vec, ir.Constant(_I32, 0))


def _lane_index(builder, start):
    """The vector ``start + (0, 1, ..., LANES - 1)`` of int64."""
    return builder.add(_splat(builder, start), ir.Constant(ir.VectorType(_I64, LANES),
                                                           list(range(LANES))))


def _data(context, builder, aty, value):
    """The float pointer an argument stands for (an array's data, or a pointer itself)."""
    if isinstance(aty, types.CPointer):
        return value
    return context.make_array(aty)(context, builder, value=value).data


def _literal_count(nvec):
    return isinstance(nvec, types.IntegerLiteral) and nvec.literal_value > 0


def _rows_of_float32(*arrays):
    """Whether all are float32 pointers or C-contiguous 1-D float32 arrays (the kernels
    read them through their data pointers)."""
    return all((isinstance(a, types.CPointer) and a.dtype == types.float32)
               or (isinstance(a, types.Array) and a.dtype == types.float32 and a.ndim == 1
                   and a.layout == "C") for a in arrays)


@intrinsic
def row_pointer(typingctx, array, row):
    """Pointer to row ``row`` of a C-contiguous float32 array seen as rows of its last
    axis: ``array.flat[row * array.shape[-1]]``.

    Kernels take rows as such pointers: an array view per row would cost an atomic
    reference-count increment and decrement each, more than a short row's work.
    """
    if not (isinstance(array, types.Array) and array.dtype == types.float32
            and array.layout == "C" and isinstance(row, types.Integer)):
        return None
    sig = types.CPointer(types.float32)(array, row)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, value=args[0])
        width = cgutils.unpack_tuple(builder, ary.shape, signature.args[0].ndim)[-1]
        row_ = context.cast(builder, args[1], signature.args[1], types.int64)
        return builder.gep(ary.data, [builder.mul(row_, width)])

    return sig, codegen


def _transform_minima(builder, h_full, incoming, n, lam, origin, cap, squares, centre, h_buf,
                      nvec, hvec=None):
    """Running minima ``min_{b<n} h[b] + lam (origin + t - b)**2`` for lanes ``t`` of
    ``nvec`` vectors, with ``h = h_full - incoming``, capped at ``min_b h[b] + cap``.

    ``h`` is formed a vector at a time into ``h_buf`` (``h_full`` and ``incoming`` are
    padded to whole vectors; ``hvec`` of them if known, else enough for ``n``);
    ``squares[centre + d] = d**2`` supplies the exact squared distances as vector loads,
    so an input costs a broadcast load and one ``fmuladd`` and one ``minnum`` per vector
    of outputs.
    """
    inf_v = ir.Constant(_VEC, [_INF] * LANES)
    if hvec is None:
        hvec = builder.sdiv(builder.add(n, ir.Constant(_I64, LANES - 1)),
                            ir.Constant(_I64, LANES))
        with cgutils.for_range(builder, hvec) as loop:
            offset = builder.mul(loop.index, ir.Constant(_I64, LANES))
            _vstore(builder, builder.fsub(_vload(builder, h_full, offset),
                                          _vload(builder, incoming, offset)), h_buf, offset)
    else:
        for k in range(hvec):
            offset = ir.Constant(_I64, LANES * k)
            _vstore(builder, builder.fsub(_vload(builder, h_full, offset),
                                          _vload(builder, incoming, offset)), h_buf, offset)
    # Two sets of minima, for even and odd inputs, so that a vector's minimum does not
    # wait on the one before (minnum is exact: the order does not change the result).
    acc_ptr = [[cgutils.alloca_once(builder, _VEC) for _ in range(nvec)] for _ in range(2)]
    for ptr in acc_ptr[0] + acc_ptr[1]:
        builder.store(inf_v, ptr)
    lam_v = _splat(builder, lam)
    zero_at = builder.add(centre, origin)   # squares[zero_at - b + t] = (origin + t - b)**2

    def step(b, acc):
        hb_v = _splat(builder, builder.load(builder.gep(h_buf, [b])))
        row = builder.sub(zero_at, b)
        for k in range(nvec):
            square = _vload(builder, squares, builder.add(row, ir.Constant(_I64, LANES * k)))
            term = _call(builder, "llvm.fmuladd", lam_v, square, hb_v)
            builder.store(_call(builder, "llvm.minnum", builder.load(acc[k]), term), acc[k])

    with cgutils.for_range(builder, builder.ashr(n, ir.Constant(_I64, 1))) as loop:
        b = builder.shl(loop.index, ir.Constant(_I64, 1))
        step(b, acc_ptr[0])
        step(builder.add(b, ir.Constant(_I64, 1)), acc_ptr[1])
    with builder.if_then(builder.trunc(n, ir.IntType(1))):
        step(builder.sub(n, ir.Constant(_I64, 1)), acc_ptr[0])
    for k in range(nvec):
        builder.store(_call(builder, "llvm.minnum", builder.load(acc_ptr[0][k]),
                            builder.load(acc_ptr[1][k])), acc_ptr[0][k])
    # the truncation: no message above min(h) + cap (nothing to do when cap is +inf)
    with builder.if_then(builder.fcmp_ordered("<", cap, ir.Constant(_F32, _INF))):
        low_ptr = cgutils.alloca_once(builder, _VEC)
        builder.store(inf_v, low_ptr)
        n_v = _splat(builder, n)
        n_vec = builder.sdiv(builder.add(n, ir.Constant(_I64, LANES - 1)),
                             ir.Constant(_I64, LANES))
        with cgutils.for_range(builder, n_vec) as loop:
            offset = builder.mul(loop.index, ir.Constant(_I64, LANES))
            real = builder.icmp_signed("<", _lane_index(builder, offset), n_v)
            builder.store(_call(builder, "llvm.minnum", builder.load(low_ptr), builder.select(
                real, _vload(builder, h_buf, offset), inf_v)), low_ptr)
        top = _splat(builder, builder.fadd(_reduce(builder, builder.load(low_ptr),
                                                   "llvm.minnum"), cap))
        for k in range(nvec):
            builder.store(_call(builder, "llvm.minnum", builder.load(acc_ptr[0][k]), top),
                          acc_ptr[0][k])
    return [builder.load(ptr) for ptr in acc_ptr[0]]


@intrinsic(prefer_literal=True)
def send_message(typingctx, h_full, incoming, n, lam, shift, cap, target, squares, centre,
                 h_buf, changes, nvec):
    """One whole message of ``n <= LANES * nvec`` labels into ``target``.

    ``target[a] = m(a) - min(m)`` for ``a < n`` and ``0`` on the padding, where ``m(a) =
    min(min_b h[b] + lam (a + shift - b)**2, min(h) + cap)``, ``h = h_full - incoming``
    over ``b < n``; ``target`` holds ``LANES * nvec`` floats. ``changes`` (``LANES``
    floats) takes the lane-wise maximum with ``|change of target|``.
    """
    if not (_literal_count(nvec)
            and _rows_of_float32(h_full, incoming, target, squares, h_buf, changes)):
        return None
    count = nvec.literal_value
    sig = types.void(h_full, incoming, n, lam, shift, cap, target, squares, centre, h_buf,
                     changes, nvec)

    def codegen(context, builder, signature, args):
        aty = signature.args
        h_ptr = _data(context, builder, aty[0], args[0])
        in_ptr = _data(context, builder, aty[1], args[1])
        out_ptr = _data(context, builder, aty[6], args[6])
        sq_ptr = _data(context, builder, aty[7], args[7])
        buf_ptr = _data(context, builder, aty[9], args[9])
        changes_ptr = _data(context, builder, aty[10], args[10])
        n_, lam_, shift_, cap_ = args[2], args[3], args[4], args[5]
        acc = _transform_minima(builder, h_ptr, in_ptr, n_, lam_, shift_, cap_, sq_ptr,
                                args[8], buf_ptr, count, hvec=count)
        inf_v = ir.Constant(_VEC, [_INF] * LANES)
        zero_v = ir.Constant(_VEC, [0.0] * LANES)
        n_v = _splat(builder, n_)
        real = []
        low = inf_v
        for k in range(count):
            real.append(builder.icmp_signed(
                "<", _lane_index(builder, ir.Constant(_I64, LANES * k)), n_v))
            low = _call(builder, "llvm.minnum", low, builder.select(real[k], acc[k], inf_v))
        low_v = _splat(builder, _reduce(builder, low, "llvm.minnum"))
        delta = _vload(builder, changes_ptr, ir.Constant(_I64, 0))
        for k in range(count):
            x = builder.select(real[k], builder.fsub(acc[k], low_v), zero_v)
            old = _vload(builder, out_ptr, ir.Constant(_I64, LANES * k))
            delta = _call(builder, "llvm.maxnum", delta,
                          _call(builder, "llvm.fabs", builder.fsub(x, old)))
            _vstore(builder, x, out_ptr, ir.Constant(_I64, LANES * k))
        _vstore(builder, delta, changes_ptr, ir.Constant(_I64, 0))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic(prefer_literal=True)
def transform_block(typingctx, h_full, incoming, n, lam, origin, cap, out, start, squares,
                    centre, h_buf, nvec):
    """Unnormalised message lanes ``out[start + t]`` for ``t < LANES * nvec``:
    ``min(min_b h[b] + lam (start + t + origin - b)**2, min(h) + cap)``, ``h = h_full -
    incoming`` over ``b < n``. Returns the minimum over the lanes with ``start + t < n``
    (``+inf`` if none): a block of a message too wide for :func:`send_message`.
    """
    if not (_literal_count(nvec)
            and _rows_of_float32(h_full, incoming, out, squares, h_buf)):
        return None
    count = nvec.literal_value
    sig = types.float32(h_full, incoming, n, lam, origin, cap, out, start, squares, centre,
                        h_buf, nvec)

    def codegen(context, builder, signature, args):
        aty = signature.args
        h_ptr = _data(context, builder, aty[0], args[0])
        in_ptr = _data(context, builder, aty[1], args[1])
        out_ptr = _data(context, builder, aty[6], args[6])
        sq_ptr = _data(context, builder, aty[8], args[8])
        buf_ptr = _data(context, builder, aty[10], args[10])
        n_, lam_, origin_, cap_, start_ = args[2], args[3], args[4], args[5], args[7]
        acc = _transform_minima(builder, h_ptr, in_ptr, n_, lam_, builder.add(start_, origin_),
                                cap_, sq_ptr, args[9], buf_ptr, count)
        inf_v = ir.Constant(_VEC, [_INF] * LANES)
        n_v = _splat(builder, n_)
        low = inf_v
        for k in range(count):
            x = acc[k]
            offset = builder.add(start_, ir.Constant(_I64, LANES * k))
            real = builder.icmp_signed("<", _lane_index(builder, offset), n_v)
            low = _call(builder, "llvm.minnum", low, builder.select(real, x, inf_v))
            _vstore(builder, x, out_ptr, offset)
        return _reduce(builder, low, "llvm.minnum")

    return sig, codegen


@intrinsic(prefer_literal=True)
def data_messages(typingctx, rows, nrows, ncols, bu, bv, hu, gv, start, nvec):
    """The data factor's messages plus the beliefs, for columns ``start + t``, ``t < LANES *
    nvec``, of a node's cost matrix ``rows`` (``nrows x ncols``, unpadded), in one pass:

    * ``hu[start + t] = min_a (rows[a, start + t] + bv[a]) + bu[start + t]``,
    * ``gv[a] = min(gv[a], min_t rows[a, start + t] + bu[start + t])`` for every row ``a``.

    Columns past ``Lx`` read as ``+inf``; ``bu`` and ``hu`` hold whole vectors.
    """
    if not (_literal_count(nvec) and _rows_of_float32(rows, bu, bv, hu, gv)):
        return None
    count = nvec.literal_value
    sig = types.void(rows, types.int64, types.int64, bu, bv, hu, gv, types.int64, nvec)

    def codegen(context, builder, signature, args):
        aty = signature.args
        rows_ptr = _data(context, builder, aty[0], args[0])
        nrows, ncols = args[1], args[2]
        bu_ptr = _data(context, builder, aty[3], args[3])
        bv_ptr = _data(context, builder, aty[4], args[4])
        hu_ptr = _data(context, builder, aty[5], args[5])
        gv_ptr = _data(context, builder, aty[6], args[6])
        start = args[7]
        offsets = [builder.add(start, ir.Constant(_I64, LANES * k)) for k in range(count)]
        bu_v = [_vload(builder, bu_ptr, offset) for offset in offsets]
        acc_ptr = [cgutils.alloca_once(builder, _VEC) for _ in range(count)]
        for ptr in acc_ptr:
            builder.store(ir.Constant(_VEC, [_INF] * LANES), ptr)
        with cgutils.for_range(builder, nrows) as loop:
            a = loop.index
            row = builder.mul(a, ncols)
            s = _splat(builder, builder.load(builder.gep(bv_ptr, [a])))
            across = None
            for k in range(count):
                x = _vload_masked(builder, rows_ptr, builder.add(row, offsets[k]),
                                  builder.add(row, ncols))
                builder.store(_call(builder, "llvm.minnum", builder.load(acc_ptr[k]),
                                    builder.fadd(x, s)), acc_ptr[k])
                y = builder.fadd(x, bu_v[k])
                across = y if across is None else _call(builder, "llvm.minnum", across, y)
            gv_a = builder.gep(gv_ptr, [a])
            builder.store(_call(builder, "llvm.minnum", builder.load(gv_a),
                                _reduce(builder, across, "llvm.minnum")), gv_a)
        for k in range(count):
            _vstore(builder, builder.fadd(builder.load(acc_ptr[k]), bu_v[k]), hu_ptr,
                    offsets[k])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def first_argmin(typingctx, row, add, n):
    """The first ``b < n`` minimising ``row[b] + add[b]`` (``0`` if all are ``+inf``);
    ``row`` may end at ``n``, ``add`` holds whole vectors."""
    if not _rows_of_float32(row, add):
        return None
    sig = types.int64(row, add, n)

    def codegen(context, builder, signature, args):
        aty = signature.args
        row_ptr = _data(context, builder, aty[0], args[0])
        add_ptr = _data(context, builder, aty[1], args[1])
        n = args[2]
        ivec = ir.VectorType(_I64, LANES)
        inf_v = ir.Constant(_VEC, [_INF] * LANES)
        best_ptr = cgutils.alloca_once(builder, _VEC)
        arg_ptr = cgutils.alloca_once(builder, ivec)
        builder.store(inf_v, best_ptr)
        builder.store(ir.Constant(ivec, [0] * LANES), arg_ptr)
        n_v = _splat(builder, n)
        n_vec = builder.sdiv(builder.add(n, ir.Constant(_I64, LANES - 1)),
                             ir.Constant(_I64, LANES))
        # per lane, the first strict minimum; then the lowest index among the lanes that
        # hold the overall minimum
        with cgutils.for_range(builder, n_vec) as loop:
            offset = builder.mul(loop.index, ir.Constant(_I64, LANES))
            index = _lane_index(builder, offset)
            x = builder.fadd(_vload_masked(builder, row_ptr, offset, n),
                             _vload(builder, add_ptr, offset))
            x = builder.select(builder.icmp_signed("<", index, n_v), x, inf_v)
            best = builder.load(best_ptr)
            better = builder.fcmp_ordered("<", x, best)
            builder.store(builder.select(better, index, builder.load(arg_ptr)), arg_ptr)
            builder.store(_call(builder, "llvm.minnum", best, x), best_ptr)
        best = builder.load(best_ptr)
        low = _splat(builder, _reduce(builder, best, "llvm.minnum"))
        big = ir.Constant(ivec, [2**62] * LANES)
        candidates = builder.select(builder.fcmp_ordered("==", best, low),
                                    builder.load(arg_ptr), big)
        width = LANES
        while width > 1:
            width //= 2
            upper = builder.shuffle_vector(candidates, candidates, ir.Constant(
                ir.VectorType(_I32, LANES),
                list(range(width, 2 * width)) + [0] * (LANES - width)))
            candidates = builder.select(builder.icmp_signed("<", upper, candidates), upper,
                                        candidates)
        first = builder.extract_element(candidates, ir.Constant(_I32, 0))
        # all +inf: no lane improved on its start, and the scalar loop answers 0
        return builder.select(builder.fcmp_ordered("==", builder.extract_element(
            low, ir.Constant(_I32, 0)), ir.Constant(_F32, _INF)), ir.Constant(_I64, 0), first)

    return sig, codegen


@intrinsic
def belief_sum(typingctx, block, width, out):
    """``out[t] = ((block[t] + block[w + t]) + block[2w + t]) + block[3w + t]``, ``w =
    width`` (whole vectors): a node's four incoming messages of one layer, summed."""
    if not _rows_of_float32(block, out):
        return None
    sig = types.void(block, types.int64, out)

    def codegen(context, builder, signature, args):
        aty = signature.args
        data = _data(context, builder, aty[0], args[0])
        width = args[1]
        out_ptr = _data(context, builder, aty[2], args[2])
        with cgutils.for_range(builder, builder.sdiv(width, ir.Constant(_I64, LANES))) as loop:
            offset = builder.mul(loop.index, ir.Constant(_I64, LANES))
            total = _vload(builder, data, offset)
            for k in range(1, 4):
                total = builder.fadd(total, _vload(builder, data, builder.add(
                    builder.mul(width, ir.Constant(_I64, k)), offset)))
            _vstore(builder, total, out_ptr, offset)
        return context.get_dummy_value()

    return sig, codegen
