"""The flow MRF's solvers: private, layered, each module importing only those below it.

``_numba``      the numba helpers the kernels share (fast-math flags, a vectorising min)
``_simd``       LLVM vector kernels of the dual-layer sweep (messages, row minima)
``_costs``      label grids, data costs and label prices, coarsening and label-grid resampling
``_bp2d``       min-sum BP with 2-D messages (distance transforms)
``_dual``       dual-layer min-sum BP (SIFT Flow's decomposition), the default solver
``_transport``  optimal-transport prices of the target nodes
``_refine``     sub-cell refinement of a labelling
``_solve``      the solvers' entry points: flat and coarse-to-fine BP, energies

:func:`skcorr.flow.align` is the public entry point; it checks the settings once, so
these functions check only the arrays of the problem.
"""
