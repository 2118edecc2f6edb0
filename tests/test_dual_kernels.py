"""Dual-layer BP's vector kernels on label widths that take each of their code paths.

Label rows are padded to whole vectors of 8 floats; a message of up to 64 labels stays
in registers (1 to 8 vectors), a wider one goes through memory in blocks, and the cost
rows end mid-vector unless their width is a multiple of 8.
"""

import numpy as np
import pytest
from flow_reference import dual_bp_reference, random_problem

from skcorr.flow._mrf._solve import bp_energy, dual_layer_bp

# (Ly, Lx): one label, one whole vector, a vector and one, three vectors, eight, and
# beyond the registers in either axis
LABELS = [(1, 3), (8, 9), (5, 17), (64, 2), (3, 70), (70, 9)]


@pytest.mark.parametrize("labels", LABELS)
@pytest.mark.parametrize("truncation", [None, 2.0])
@pytest.mark.parametrize("distance, power", [("squared", 2), ("absolute", 1)])
def test_messages_match_brute_force_on_every_label_width(labels, truncation, distance, power):
    # the squared distance transform and SIFT Flow's L1 one (energy="sift-flow")
    rng = np.random.default_rng(sum(labels))
    shape = (3, 4)
    costs = random_problem(rng, shape, labels)
    # neighbours' offsets up to 18 apart: message shifts far beyond the label rows
    offsets = rng.integers(-9, 10, size=shape + (2,))
    result, (mu, mv) = dual_layer_bp(costs, 0.4, offsets, max_iter=3, tol=0, patience=0,
                                     truncation=truncation, distance=distance,
                                     return_messages=True)
    cap = np.inf if truncation is None else truncation**power
    ref_mu, ref_mv = dual_bp_reference(costs, 0.4, offsets, result.n_iter, cap, power=power)
    assert result.n_iter == 3
    np.testing.assert_allclose(mu, ref_mu, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(mv, ref_mv, rtol=1e-5, atol=1e-4)
    assert result.energy == pytest.approx(sum(bp_energy(
        costs, result.labels, 0.4, offsets, truncation=truncation, distance=distance)))


@pytest.mark.parametrize("labels", LABELS)
def test_ties_go_to_the_first_label_in_row_major_order(labels):
    # lam = 0: every message is zero and each node takes its cheapest label; with the
    # minimum repeated across vector lanes, rows and blocks, the first one in row-major
    # order (what np.argmin of the flattened costs picks)
    rng = np.random.default_rng(7)
    shape = (2, 3)
    costs = rng.uniform(1, 4, size=shape + labels)
    flat = costs.reshape(shape + (-1,))
    for node in np.ndindex(shape):
        ties = rng.choice(flat.shape[-1], size=min(3, flat.shape[-1]), replace=False)
        flat[node + (ties,)] = 0.5
    result = dual_layer_bp(costs, 0.0, max_iter=2)
    expected = np.stack(np.divmod(flat.argmin(axis=-1), labels[1]), axis=-1)
    np.testing.assert_array_equal(result.labels, expected)
