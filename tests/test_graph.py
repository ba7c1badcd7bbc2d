import numpy as np

from asar_model.graph import BONES, CENTER, EDGES, PARENTS, Graph, adjacency, hop_distance


def _spatial_by_loops(max_hop: int = 1) -> np.ndarray:
    """ST-GCN's spatial partition written with explicit loops over joint pairs."""
    v = 25
    link = np.eye(v)
    for i, j in EDGES:
        link[i, j] = link[j, i] = 1
    hop = np.full((v, v), np.inf)
    for d in range(max_hop, -1, -1):
        hop[np.linalg.matrix_power(link, d) > 0] = d
    adj = (hop <= max_hop).astype(float)
    norm = adj / adj.sum(axis=0, keepdims=True)
    parts = []
    for h in range(max_hop + 1):
        root, close, far = np.zeros((v, v)), np.zeros((v, v)), np.zeros((v, v))
        for i in range(v):
            for j in range(v):
                if hop[j, i] != h:
                    continue
                if hop[j, CENTER] == hop[i, CENTER]:
                    root[j, i] = norm[j, i]
                elif hop[j, CENTER] > hop[i, CENTER]:
                    close[j, i] = norm[j, i]
                else:
                    far[j, i] = norm[j, i]
        parts += [root] if h == 0 else [root + close, far]
    return np.stack(parts)


def test_spatial_adjacency_matches_loop_definition():
    np.testing.assert_array_equal(Graph("ntu-rgb+d", "spatial").A, _spatial_by_loops())


def test_partitions_sum_to_a_column_normalised_adjacency():
    a = adjacency("spatial")
    assert a.shape == (3, 25, 25)
    np.testing.assert_allclose(a.sum(axis=0).sum(axis=0), np.ones(25))
    assert ((a.sum(axis=0) > 0) == (hop_distance(25, EDGES, 1) <= 1)).all()


def test_known_entries_of_the_partitions():
    a = adjacency("spatial")
    assert a[0, 20, 20] == 1 / 5                 # joint 21: itself + joints 2, 3, 5, 9
    assert a[1, 0, 1] == 1 / 3                   # joint 1 is farther from 21 than joint 2
    assert a[2, 1, 0] == 1 / 4                   # joint 2 is closer: "further" column of 1
    # Joints 6 and 7 are both beyond max hop 1 from the centre (inf == inf): root subset.
    assert a[1, 6, 5] > 0 and a[1, 5, 6] > 0 and a[2, 6, 5] == 0


def test_uniform_and_distance_strategies_split_the_same_adjacency():
    uniform, distance = adjacency("uniform"), adjacency("distance")
    assert uniform.shape == (1, 25, 25) and distance.shape == (2, 25, 25)
    np.testing.assert_allclose(distance.sum(axis=0), uniform[0])


def test_bones_give_every_joint_one_parent_and_21_itself():
    assert len(BONES) == 25 and sorted(j for j, _ in BONES) == list(range(25))
    assert PARENTS[20] == 20 and PARENTS[0] == 1 and PARENTS[24] == 11
