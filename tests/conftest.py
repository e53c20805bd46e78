from __future__ import annotations

import pytest
from _helpers import make_counts
from anndata import AnnData
from scipy import sparse

import scgan_cluster as scg


@pytest.fixture(autouse=True)
def _quiet_settings():
    """Tests run without progress bars, at the default verbosity, and restore both."""
    old = (scg.settings.progress_bar, scg.settings.verbosity, scg.settings.device)
    scg.settings.progress_bar = False
    scg.settings.verbosity = "warning"
    yield
    scg.settings.progress_bar, scg.settings.verbosity, scg.settings.device = old


@pytest.fixture
def counts() -> AnnData:
    return make_counts()


@pytest.fixture
def counts_sparse() -> AnnData:
    a = make_counts()
    a.X = sparse.csr_matrix(a.X)
    return a
