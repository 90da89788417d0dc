"""Fréchet Wavelet Distance per packet and per band, its per-sample linearisation, PSD band ratios.

Pure math (coefficients and statistics in, numbers out; float64): streaming packet moments, the
Fréchet distance of every packet against fixed reference statistics, band and aggregate means,
and each sample's first-order influence on them (what the paired bootstrap resamples). It must not
read images or runs (that is `stages.spectral_bands`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ssg_eval.metrics.frechet import frechet_distance

__all__ = [
    "PacketMoments",
    "band_means",
    "packet_frechet",
    "packet_influence",
    "sensitivity_matrices",
]


@dataclass
class PacketMoments:
    """Running count, sum and sum of outer products of per-packet coefficient vectors (float64).

    Mergeable (`merge`) and streamable (`update`), so a run's statistics never need all its
    coefficients in memory: (P, D) sums and (P, D, D) second moments only.
    """

    count: int
    sum_PD: torch.Tensor
    outer_PDD: torch.Tensor

    @classmethod
    def zeros(cls, packets: int, dim: int, device: str | torch.device = "cpu") -> PacketMoments:
        """Empty moments of `packets` packets of `dim` coefficients each."""
        return cls(
            0,
            torch.zeros(packets, dim, dtype=torch.float64, device=device),
            torch.zeros(packets, dim, dim, dtype=torch.float64, device=device),
        )

    def update(self, coeffs_NPD: torch.Tensor) -> None:
        """Add a batch of (N, P, D) coefficients (float64, same device)."""
        x_PND = coeffs_NPD.to(self.sum_PD.device, torch.float64).transpose(0, 1)
        self.count += x_PND.shape[1]
        self.sum_PD += x_PND.sum(1)
        self.outer_PDD += torch.bmm(x_PND.transpose(1, 2), x_PND)

    def merge(self, other: PacketMoments) -> PacketMoments:
        """The moments of both sample sets together (a new object)."""
        return PacketMoments(
            self.count + other.count,
            self.sum_PD + other.sum_PD.to(self.sum_PD.device),
            self.outer_PDD + other.outer_PDD.to(self.sum_PD.device),
        )

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-packet mean (P, D) and unbiased covariance (P, D, D) (N − 1), as numpy float64.

        Raises:
            ValueError: fewer than 2 samples.
        """
        if self.count < 2:
            raise ValueError(f"FWD needs at least 2 images per set, got {self.count}")
        mu_PD = self.sum_PD / self.count
        centred = self.outer_PDD - self.count * mu_PD[:, :, None] * mu_PD[:, None, :]
        sigma_PDD = centred / (self.count - 1)
        sigma_PDD = (sigma_PDD + sigma_PDD.transpose(1, 2)) / 2
        return mu_PD.cpu().numpy(), sigma_PDD.cpu().numpy()


def packet_frechet(
    mu_PD: np.ndarray,
    sigma_PDD: np.ndarray,
    ref_mu_PD: np.ndarray,
    ref_sigma_PDD: np.ndarray,
    method: str = "eigh",
) -> np.ndarray:
    """Fréchet distance of every packet: ‖μ_p − μ_r,p‖² + tr Σ_p + tr Σ_r,p − 2 tr √(Σ_p Σ_r,p).

    Each packet goes through `metrics.frechet.frechet_distance` (`eigh`, or ADM's literal `sqrtm`
    with its 1e-6 retry), the same routine as FID.

    Returns:
        (P,) float64 distances; their mean over packets is FWD.
    """
    return np.asarray(
        [
            frechet_distance(mu_PD[p], sigma_PDD[p], ref_mu_PD[p], ref_sigma_PDD[p], method=method)
            for p in range(len(mu_PD))
        ],
        dtype=np.float64,
    )


def _sym_sqrt(matrix_PDD: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Batched symmetric (pseudo-inverse) square root through eigh; tiny eigenvalues -> 0."""
    evals_PD, evecs_PDD = torch.linalg.eigh((matrix_PDD + matrix_PDD.transpose(1, 2)) / 2)
    evals_PD = evals_PD.clamp_min(0)
    if inverse:
        floor = evals_PD.amax(dim=1, keepdim=True) * evals_PD.shape[1] * 1e-12
        root = torch.where(evals_PD > floor, evals_PD.clamp_min(1e-300).rsqrt(), 0.0)
    else:
        root = evals_PD.sqrt()
    return (evecs_PDD * root[:, None, :]) @ evecs_PDD.transpose(1, 2)


def sensitivity_matrices(
    sigma_PDD: np.ndarray, ref_sigma_PDD: np.ndarray, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """∂FD/∂Σ of every packet: G = I − A (A Σ A)^{−1/2} A with A = Σ_r^{1/2} (pseudo-inverse).

    From d tr √(AΣA) = ½ tr(A (AΣA)^{−1/2} A dΣ); used by `packet_influence`.

    Returns:
        float64 (P, D, D) on `device`.
    """
    sigma = torch.as_tensor(sigma_PDD, dtype=torch.float64, device=device)
    root_ref = _sym_sqrt(torch.as_tensor(ref_sigma_PDD, dtype=torch.float64, device=device))
    inv_root_mid = _sym_sqrt(root_ref @ sigma @ root_ref, inverse=True)
    eye = torch.eye(sigma.shape[-1], dtype=torch.float64, device=device)
    return eye - root_ref @ inv_root_mid @ root_ref


def packet_influence(
    coeffs_NPD: torch.Tensor,
    mu_PD: np.ndarray,
    ref_mu_PD: np.ndarray,
    sensitivity_PDD: torch.Tensor,
) -> torch.Tensor:
    """Each sample's first-order influence on every packet's Fréchet distance (not centred).

    Reweighting sample i by 1 + ε moves FD_p by ε/N · ψ_ip to first order, with
    ψ_ip = 2 (μ_p − μ_r,p)·(x_ip − μ_p) + (x_ip − μ_p)ᵀ G_p (x_ip − μ_p) − tr(G_p Σ_p); this
    returns the first two terms; the caller subtracts their mean over all N samples (which is the
    constant, up to N/(N − 1)), so that the influences of a full set sum to 0.

    Args:
        coeffs_NPD: (N, P, D) coefficients of a batch of samples.
        mu_PD: the whole set's per-packet mean. ref_mu_PD: the reference's.
        sensitivity_PDD: `sensitivity_matrices` of the whole set.

    Returns:
        float64 (N, P) on the sensitivity's device.
    """
    device = sensitivity_PDD.device
    mu = torch.as_tensor(mu_PD, dtype=torch.float64, device=device)
    gap = mu - torch.as_tensor(ref_mu_PD, dtype=torch.float64, device=device)
    centred_PND = (coeffs_NPD.to(device, torch.float64) - mu).transpose(0, 1)
    quadratic_PN = (torch.bmm(centred_PND, sensitivity_PDD) * centred_PND).sum(-1)
    linear_PN = 2 * (centred_PND * gap[:, None, :]).sum(-1)
    return (quadratic_PN + linear_PN).T


def band_means(values_XP: np.ndarray, bands_P: np.ndarray, num_bands: int) -> np.ndarray:
    """Mean over the packets of each band, along the last axis: (..., P) -> (..., num_bands).

    Raises:
        ValueError: a band without packets.
    """
    values = np.asarray(values_XP, dtype=np.float64)
    counts = np.bincount(bands_P, minlength=num_bands)
    if (counts[:num_bands] == 0).any():
        raise ValueError(f"bands {np.flatnonzero(counts == 0).tolist()} hold no packet")
    onehot_PB = np.eye(num_bands, dtype=np.float64)[bands_P]
    return values @ onehot_PB / counts[:num_bands]
