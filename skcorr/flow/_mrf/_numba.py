"""What the numba kernels of the flow MRF share: the fast-math flags, a vectorising
``min``, and the order of a node's four neighbours."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

# No NaN ever arises (costs are finite or +inf, messages finite), so min/argmin loops
# may be vectorised; +inf must keep its meaning, so no "ninf".
_FASTMATH = {"nnan", "nsz", "arcp", "contract", "reassoc"}

# Neighbour k of node (i, j) is (i + _DI[k], j + _DJ[k]); k ^ 1 is the opposite direction.
_DI = (-1, 1, 0, 0)
_DJ = (0, 0, -1, 1)


@intrinsic
def _fmin(typingctx, a, b):
    """``min(a, b)`` of two float32 (or two float64) as LLVM's ``minnum``.

    numba's ``min`` lowers to a compare and select that LLVM neither vectorises as a
    reduction nor keeps out of masked stores; ``minnum`` vectorises to ``vminps``.
    """
    if a != b or a not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        ty = context.get_value_type(a)
        fn = builder.module.declare_intrinsic("llvm.minnum", [ty], ir.FunctionType(ty, [ty, ty]))
        return builder.call(fn, args)

    return a(a, b), codegen
