import numpy as np
import pandas as pd
import pytest

from scgan_cluster import metrics

# 10 cells, 3 classes; clusters hand-labelled so that every number below is worked out by hand.
TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
PRED = np.array([1, 1, 1, 0, 0, 0, 0, 2, 2, 1])
# contingency (rows: classes 0,1,2; columns: clusters 0,1,2):
#   class 0: [1, 3, 0]   class 1: [3, 0, 0]   class 2: [0, 1, 2]


def test_contingency():
    np.testing.assert_array_equal(
        metrics.contingency(TRUE, PRED), [[1, 3, 0], [3, 0, 0], [0, 1, 2]]
    )


def test_hungarian_accuracy_hand_computed():
    # best matching: cluster1->class0 (3), cluster0->class1 (3), cluster2->class2 (2) = 8 / 10
    assert metrics.hungarian_accuracy(TRUE, PRED) == pytest.approx(0.8)


def test_purity_hand_computed():
    # cluster0 majority 3, cluster1 majority 3, cluster2 majority 2 -> 8 / 10
    assert metrics.purity(TRUE, PRED) == pytest.approx(0.8)


def test_purity_differs_from_hungarian_when_clusters_share_a_class():
    t = [0, 0, 0, 0, 1, 1]
    p = [0, 0, 1, 1, 1, 1]
    # purity: cluster0 -> class0 (2), cluster1 -> majority class0 or 1 (2) -> 4/6
    assert metrics.purity(t, p) == pytest.approx(4 / 6)
    # Hungarian: one-to-one, best is c0->0 (2) + c1->1 (2) = 4/6 as well; with 3 clusters it differs:
    t = [0, 0, 0, 0, 0, 0, 1, 1]
    p = [0, 0, 1, 1, 2, 2, 2, 2]
    assert metrics.purity(t, p) == pytest.approx(
        8 / 8 - 2 / 8
    )  # c0:2, c1:2, c2: 2 of class 1 -> 6/8
    assert metrics.hungarian_accuracy(t, p) == pytest.approx(4 / 8)  # c0->0 (2), c2->1 (2)


def test_nmi_hand_computed():
    # two balanced classes split perfectly, relabelled -> NMI 1; independent split -> 0
    assert metrics.nmi([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert metrics.nmi([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)
    # t = [0,0,1,1], p = [0,0,0,1]: I = H(P) - H(P|T) = h(1/4) - 1/2 * h(1/2) in nats
    h = lambda p: -(p * np.log(p) + (1 - p) * np.log(1 - p))  # noqa: E731
    mi = h(0.25) - 0.5 * h(0.5)
    ht, hp = np.log(2), h(0.25)
    assert metrics.nmi([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(mi / ((ht + hp) / 2))
    assert metrics.nmi([0, 0, 1, 1], [0, 0, 0, 1], average_method="geometric") == pytest.approx(
        mi / np.sqrt(ht * hp)
    )


def test_ari_hand_computed():
    # t=[0,0,1,1], p=[0,0,0,1]: sum C(n_ij,2)=1, a=C(2,2)+C(2,2)=2, b=C(3,2)=3, total C(4,2)=6
    # expected = a*b/total = 1; max = (a+b)/2 = 2.5 -> ARI = (1-1)/(2.5-1) = 0
    assert metrics.ari([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(0.0)
    # a relabelling of the same partition agrees perfectly
    assert metrics.ari(TRUE, [{0: "x", 1: "y", 2: "z"}.get(int(t), t) for t in TRUE]) == 1.0
    # t=[0,0,1,1,2,2], p=[0,0,1,1,1,1]: sum C(n_ij,2)=3, a=3, b=C(2,2)+C(4,2)=7, total=15
    # expected = 21/15 = 1.4; max = 5 -> ARI = (3 - 1.4) / (5 - 1.4) = 4/9
    assert metrics.ari([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 1]) == pytest.approx(4 / 9)


def test_labels_of_any_type():
    t = pd.Categorical(["B", "B", "T", "T"])
    p = pd.Series(["3", "3", "1", "1"], dtype="category")
    out = metrics.cluster_metrics(t, p)
    assert out == {"acc": 1.0, "purity": 1.0, "nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}


@pytest.mark.parametrize(
    ("t", "p", "msg"),
    [
        ([0, 1], [0], "differ in length"),
        ([], [], "empty"),
        ([0, np.nan], [0, 1], "NaN"),
        (np.zeros((2, 2)), [0, 1], "1-D"),
    ],
)
def test_bad_labels(t, p, msg):
    with pytest.raises(ValueError, match=msg):
        metrics.hungarian_accuracy(t, p)
