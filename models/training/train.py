"""Train the leukocyte classifier on segmented crops and export it to ONNX with its model card.

Input: crop folders written by `leuko segment --dataset DIR --out OUT --size N` (dataset.tsv beside the crops),
so that training sees exactly the pixels the C# pipeline feeds the model. Validation is split by source photograph
(Kaggle frames: groups.tsv; PBC: each image is its own cell), stratified by class, never at random.

Runs on CPU with Debian's PyTorch 1.13 and on a GPU with PyTorch 2.x. Everything random is seeded.
"""
import argparse
import hashlib
import inspect
import json
import math
import os
import random
import sys
import time
from collections import defaultdict

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F

import stain
import dataset
from dataset import CLASSES, DIFFERENTIAL, OTHER, load_fields, load_source, log
from flops import flops
from model import LeukocyteCnn, layer_counts

def grouped_split(labels, groups, fraction, rng, fold=None):
    """Validation = `fraction` of each class's source photographs (at least 2), drawn with `rng`. With `fold` (k, n):
    fold k (1-based) of n of each class's photographs, shuffled with `rng`, so that n runs validate every photograph once
    (grouped cross-validation; `fraction` is then not used)."""
    by_class = defaultdict(set)
    for y, g in zip(labels, groups):
        by_class[y].add(g)
    val_groups = set()
    for y in sorted(by_class):
        gs = sorted(by_class[y])
        rng.shuffle(gs)
        if fold is None:
            val_groups.update(gs[: max(2, round(len(gs) * fraction))])
        else:
            k, n = fold
            val_groups.update(gs[k - 1::n])
    val = np.array([g in val_groups for g in groups])
    return ~val, val


def parse_fold(text):
    """`--fold K/N` as (K, N), or None."""
    if not text:
        return None
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        sys.exit(f"--fold {text}: expected K/N, as 1/5")
    if not 1 <= k <= n or n < 2:
        sys.exit(f"--fold {text}: K must be 1 to N and N at least 2")
    return k, n


# Ruifrok & Johnston's stain vectors (haematoxylin, eosin, DAB) as rows, in RGB optical density, as in scikit-image.
RGB_FROM_HED = torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
RGB_FROM_HED = RGB_FROM_HED / RGB_FROM_HED.norm(dim=1, keepdim=True)
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)


STAIN_VECTOR_JITTER = 0.0


def stain_jitter(x, gen, sigma=0.25, bias=0.05):
    """Stain augmentation that follows the physics of absorption (Tellez et al. 2018): each pixel's optical density is
    split into haematoxylin-, eosin- and residual-like stain amounts, each scaled by U(1-sigma, 1+sigma) and shifted by
    U(-bias, bias) per image, and recomposed. A stronger or weaker stain, another dye lot or another lamp. With
    STAIN_VECTOR_JITTER v > 0 the amounts are recomposed with each crop's own stain colours: every channel of every stain
    vector scaled by U(1-v, 1+v) and the vector renormalised, so each dye's hue moves on its own (another Romanowsky
    stain: Wright, Giemsa, May-Grünwald-Giemsa), not only its strength."""
    n = x.shape[0]
    od = -torch.log(x.clamp(min=1 / 255.0))
    stains = torch.einsum("nchw,cd->ndhw", od, HED_FROM_RGB.to(x.device))
    alpha = (1 + (torch.rand(n, 3, 1, 1, generator=gen) * 2 - 1) * sigma).to(x.device)
    beta = ((torch.rand(n, 3, 1, 1, generator=gen) * 2 - 1) * bias).to(x.device)
    if STAIN_VECTOR_JITTER > 0:
        vectors = RGB_FROM_HED[None] * (1 + (torch.rand(n, 3, 3, generator=gen) * 2 - 1) * STAIN_VECTOR_JITTER)
        vectors = (vectors / vectors.norm(dim=2, keepdim=True)).to(x.device)
        od = torch.einsum("ndhw,ndc->nchw", stains * alpha + beta, vectors)
    else:
        od = torch.einsum("ndhw,dc->nchw", stains * alpha + beta, RGB_FROM_HED.to(x.device))
    return torch.exp(-od.clamp(min=0)).clamp(0, 1)


def camera_jitter(x, gen):
    """What a camera adds: a white-balance cast (per-channel gain +-10%), defocus (Gaussian blur, sigma up to 1 px, on a
    third of the crops) and sensor/JPEG noise (Gaussian, sd up to 0.02, on a third)."""
    n = x.shape[0]
    gain = (1 + (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 0.2).to(x.device)
    x = x * gain
    sigma = float(torch.rand(1, generator=gen)) * 1.0
    if float(torch.rand(1, generator=gen)) < 1 / 3 and sigma > 0.2:
        r = torch.arange(-2, 3, dtype=torch.float32)
        k = torch.exp(-(r ** 2) / (2 * sigma ** 2))
        k = (k / k.sum()).to(x.device)
        x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), k.view(1, 1, 1, 5).repeat(3, 1, 1, 1), groups=3)
        x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), k.view(1, 1, 5, 1).repeat(3, 1, 1, 1), groups=3)
    if float(torch.rand(1, generator=gen)) < 1 / 3:
        x = x + torch.randn(x.shape, generator=gen).to(x.device) * float(torch.rand(1, generator=gen)) * 0.02
    return x.clamp(0, 1)


RESOLUTION_JITTER = 1.0


def resolution_jitter(x, gen, most):
    """Another camera or objective: half of the crops (per batch) seen at a lower resolution, downsampled by a factor
    U(1, most) (antialiased) and brought back to the input size (bilinear), as a lower magnification, a weaker
    objective or a smaller sensor resolves the same 18 µm window."""
    if most <= 1:
        return x
    factor = 1 + float(torch.rand(1, generator=gen)) * (most - 1)
    size = x.shape[-1]
    small = max(8, round(size / factor))
    low = F.interpolate(F.interpolate(x, size=(small, small), mode="bilinear", align_corners=False, antialias=True),
                        size=(size, size), mode="bilinear", align_corners=False)
    pick = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(pick, low, x)


GRAYSCALE_SHARE = 0.0


def add_mixstyle(model, gen, p, alpha=0.1, blocks=2):
    """MixStyle (Zhou et al., "Domain generalization with MixStyle", ICLR 2021): in training, with probability p per
    batch, the feature maps after each of the first `blocks` blocks (their max-pool) keep their content but take a mix
    of their own and another crop's channel statistics (mean and standard deviation over the map, the "style" that
    stain and camera set), mixed by Beta(alpha, alpha), so that the deeper layers learn to classify across styles no
    training source has. Forward hooks, inactive in eval mode: the exported graph, its layer counts and its outputs are
    the plain model's."""
    pools = [m for m in model.features if isinstance(m, torch.nn.MaxPool2d)][:blocks]

    def hook(module, inputs, x):
        if not module.training or float(torch.rand(1, generator=gen)) >= p:
            return None
        n = x.shape[0]
        mu = x.mean(dim=(2, 3), keepdim=True).detach()
        sig = (x.var(dim=(2, 3), keepdim=True) + 1e-6).sqrt().detach()
        # Beta(alpha, alpha) by its quantile function of seeded uniforms, so that a run is reproduced by its seed
        lam = torch.from_numpy(scipy.stats.beta.ppf(torch.rand(n, generator=gen, dtype=torch.float64).numpy(), alpha, alpha))
        lam = lam.float().to(x.device)[:, None, None, None]
        perm = torch.randperm(n, generator=gen).to(x.device)
        return (x - mu) / sig * (lam * sig + (1 - lam) * sig[perm]) + lam * mu + (1 - lam) * mu[perm]

    return [m.register_forward_hook(hook) for m in pools]


def grayscale_jitter(x, gen, share):
    """A share of the crops (per batch) seen without colour: each replaced by its luminance (Rec. 709 weights) in all
    three channels, so that the model also learns the cells' shapes and textures without their stain's hue."""
    if share <= 0:
        return x
    luma = (0.2126 * x[:, 0:1] + 0.7152 * x[:, 1:2] + 0.0722 * x[:, 2:3]).expand_as(x)
    pick = (torch.rand(x.shape[0], generator=gen) < share).to(x.device)[:, None, None, None]
    return torch.where(pick, luma, x)


AMPLITUDE_MIX = 0.0
AMPLITUDE_BAND = 1.0
RANDOM_CONVOLUTION = 0.0


def random_convolution(x, gen, share, sizes=(1, 3, 5)):
    """RandConv (Xu et al., "Robust and generalizable visual representation learning via random convolutions", ICLR
    2021): per batch one random convolution (kernel size from `sizes`, Kaiming-normal weights, 3 to 3 channels), its
    output given each crop's own per-channel mean and deviation, and mixed with the crop by alpha ~ U(0, 1), on a share
    of the crops. A random local texture and colour mapping keeps shapes and replaces the rendering a microscope gives."""
    if share <= 0:
        return x
    n = x.shape[0]
    k = sizes[int(torch.randint(0, len(sizes), (1,), generator=gen))]
    w = (torch.randn(3, 3, k, k, generator=gen) / (3 * k * k) ** 0.5).to(x.device)
    y = F.conv2d(F.pad(x, (k // 2,) * 4, mode="reflect") if k > 1 else x, w)
    mu, sd = x.mean(dim=(2, 3), keepdim=True), x.std(dim=(2, 3), keepdim=True)
    y = (y - y.mean(dim=(2, 3), keepdim=True)) / (y.std(dim=(2, 3), keepdim=True) + 1e-6) * sd + mu
    alpha = torch.rand(n, 1, 1, 1, generator=gen).to(x.device)
    mixed = (alpha * x + (1 - alpha) * y).clamp(0, 1)
    pick = (torch.rand(n, generator=gen) < share).to(x.device)[:, None, None, None]
    return torch.where(pick, mixed, x)


def amplitude_mix(x, gen, share, eta=1.0, band=None):
    """Fourier amplitude mix (Xu et al., "A Fourier-based framework for domain generalization", CVPR 2021): a share of
    the crops (per batch) keep the phase of their spectrum (where edges and shapes are) and take a mix of their own
    amplitude spectrum and another crop's of the batch, by lambda ~ U(0, eta) per crop, per channel. The amplitude
    carries the low-level statistics a stain, lamp and camera set (mean colour, contrast, blur, noise), so the model sees
    a cell's structure under another crop's, often another source's, rendering."""
    if share <= 0:
        return x
    band = AMPLITUDE_BAND if band is None else band
    n = x.shape[0]
    spec = torch.fft.fft2(x)
    amp, phase = spec.abs(), spec.angle()
    perm = torch.randperm(n, generator=gen).to(x.device)
    lam = (torch.rand(n, 1, 1, 1, generator=gen) * eta).to(x.device)
    if band < 1:
        # Only the lowest frequencies (|f| within band of the Nyquist frequency on both axes), as Yang & Soatto's FDA
        # (CVPR 2020) swaps them: the colour and illumination, not the texture.
        fy = torch.fft.fftfreq(x.shape[2]).abs()[:, None] <= band * 0.5
        fx = torch.fft.fftfreq(x.shape[3]).abs()[None, :] <= band * 0.5
        lam = lam * (fy & fx).to(x.device).float()
    mixed = torch.fft.ifft2(torch.polar((1 - lam) * amp + lam * amp[perm], phase)).real.clamp(0, 1)
    pick = (torch.rand(n, generator=gen) < share).to(x.device)[:, None, None, None]
    return torch.where(pick, mixed, x)


def augment(x, gen):
    """The paper's augmentations on a float batch in [0,1] (N,3,S,S): flips, 90-degree rotations, random shear,
    brightness and contrast; scale +-15% (the error of a red-cell scale estimate); then stain and camera jitter."""
    n = x.shape[0]
    dev = x.device
    x = random_convolution(amplitude_mix(x, gen, AMPLITUDE_MIX), gen, RANDOM_CONVOLUTION)
    x = grayscale_jitter(camera_jitter(resolution_jitter(stain_jitter(x, gen), gen, RESOLUTION_JITTER), gen), gen, GRAYSCALE_SHARE)
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x = torch.rot90(x, k, dims=(2, 3))
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.to(dev)[:, None, None, None], x.flip(3), x)
    # Shear (and a little scale) by an affine grid; borders replicate the edge (background colour of the crop).
    shear = (torch.rand(n, 2, generator=gen) - 0.5) * 0.4
    scale = 1 + (torch.rand(n, generator=gen) - 0.5) * 0.3
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale
    theta[:, 0, 1] = shear[:, 0]
    theta[:, 1, 0] = shear[:, 1]
    theta[:, 1, 1] = scale
    grid = F.affine_grid(theta.to(dev), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    brightness = ((torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.3).to(dev)
    contrast = (1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4).to(dev)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean + brightness).clamp(0, 1)
    return x


# Colour normalisation (the card's input.colourNormalisation; Leuko.Core.Classification.ColourNormalisation in C#):
# None, or the reference white and the reference dark optical density every crop is mapped to.
COLOUR = None
COLOUR_METHOD = "white-dark-od"
# white-od-gain: one gain for the three channels (keeps the stains' hue); macenko: Macenko et al. 2009 (both Python only,
# tried and not kept: models/README.md, "What did not help").
COLOUR_METHODS = [COLOUR_METHOD, "white-od-gain", "macenko"]
COLOUR_REFERENCE = {"white": [0.9, 0.9, 0.9], "darkOpticalDensity": [1.0, 1.6, 0.5], "minGain": 1 / 3, "maxGain": 3.0,
                    "minLuminance": 24, "minPixels": 100}


# Field normalisation (--field-normalisation red-cell-od): each crop mapped by its own field's references, measured by
# the C# segmenter over the whole image (fields.tsv, Leuko.Core.Segmentation.FieldColours), not by the crop's own
# pixels, so that what tells the classes apart (how dark a nucleus is, the hue of granules) is kept: per channel the
# field's background is the white (the lamp and the camera's white balance), and one optical-density gain for the
# three channels brings the field's red cells' summed optical density to the reference (how thickly the smear took the
# stain). out = white_ref * exp(-gain * od), od = -ln(I / white), at least 0. A field with too little background is
# left as it is; one with too few red cells gets gain 1.
FIELD_REFERENCE = {"white": 230.0, "minWhitePixels": 500, "minRedPixels": 200, "minRedOpticalDensity": 0.05,
                   "minGain": 1 / 3, "maxGain": 3.0}


def field_red_od(fields):
    """Summed optical density of each field's red cells against its background (0 where either is missing)."""
    white, red = fields[:, [2, 1, 0]], fields[:, [6, 5, 4]]
    od = np.clip(-np.log(np.maximum(red, 1) / np.maximum(white, 1)), 0, None).sum(1)
    ok = (fields[:, 3] >= FIELD_REFERENCE["minWhitePixels"]) & (fields[:, 7] >= FIELD_REFERENCE["minRedPixels"])
    return np.where(ok, od, 0.0)


def field_normalise(imgs, fields, red_od_ref, ref=FIELD_REFERENCE):
    """uint8 RGB crops (N,H,W,3) mapped by their fields' references (see FIELD_REFERENCE), as uint8."""
    out = np.empty_like(imgs)
    white_all = np.maximum(fields[:, [2, 1, 0]], 1)
    red_od = field_red_od(fields)
    gain_all = np.where(red_od >= ref["minRedOpticalDensity"],
                        np.clip(red_od_ref / np.maximum(red_od, 1e-6), ref["minGain"], ref["maxGain"]), 1.0)
    for i in range(0, len(imgs), 1024):
        x = imgs[i : i + 1024].astype(np.float64)
        white = white_all[i : i + 1024, None, None, :]
        od = np.clip(-np.log(np.maximum(x, 1) / white), 0, None)
        y = np.clip(np.rint(ref["white"] * np.exp(-gain_all[i : i + 1024, None, None, None] * od)), 0, 255).astype(np.uint8)
        keep = (fields[i : i + 1024, 3] < ref["minWhitePixels"])[:, None, None, None]
        out[i : i + 1024] = np.where(keep, imgs[i : i + 1024], y)
    return out


# Macenko et al. (ISBI 2009): two stain vectors per crop from the extremes of its optical densities' angles in their
# principal plane, each stain's concentration rescaled to a reference's 99th percentile, recomposed with the
# reference's vectors. The reference is the usual haematoxylin/eosin one of the method's public implementations; for a
# Romanowsky stain the two are the azure (nuclei, granules) and the eosin (red cells, cytoplasm).
MACENKO_REFERENCE = {"white": 240 / 255, "stains": [[0.5626, 0.7201, 0.4062], [0.2159, 0.8012, 0.5581]],
                     "maxConcentrations": [1.9705, 1.0308], "minOpticalDensity": 0.15, "alpha": 0.01, "minPixels": 100}


def _masked_quantile(v, mask, q):
    """Per row of v (N,P), the q-quantile of the entries where mask holds (nearest rank)."""
    big = torch.where(mask, v, torch.full_like(v, float("inf")))
    srt = torch.sort(big, dim=1).values
    k = mask.sum(1)
    idx = (torch.floor((k - 1).clamp(min=0).float() * q)).long()
    return srt.gather(1, idx[:, None])[:, 0]


def macenko_normalise(x, ref=MACENKO_REFERENCE):
    """x: float (N,3,H,W) RGB in [0,1]; each crop mapped by Macenko's method onto the reference (a crop with fewer
    than minPixels stained pixels, optical density above minOpticalDensity, is left as it is)."""
    n, _, h, w = x.shape
    flat = x.reshape(n, 3, h * w)
    io = ref["white"]
    # The crop's own white per channel (its 95th percentile: plasma and glass), so that a lamp's or camera's cast is not
    # taken for stain; the reference's white is used to recompose.
    white = torch.quantile(flat, 0.95, dim=2).clamp(min=1 / 255)
    od = (-torch.log(flat.clamp(min=1 / 255) / white[:, :, None])).clamp(min=0)
    mask = od.norm(dim=1) > ref["minOpticalDensity"]
    m = mask[:, None, :].float()
    cnt = m.sum(2).clamp(min=1)
    mean = (od * m).sum(2) / cnt
    centred = (od - mean[:, :, None]) * m
    cov = centred @ centred.transpose(1, 2) / cnt[:, :, None]
    _, vecs = torch.linalg.eigh(cov.double())
    plane = vecs[:, :, 1:].float()  # the two largest
    proj = plane.transpose(1, 2) @ od  # (N,2,P)
    phi = torch.atan2(proj[:, 1], proj[:, 0])
    lo = _masked_quantile(phi, mask, ref["alpha"])
    hi = _masked_quantile(phi, mask, 1 - ref["alpha"])
    v1 = (plane @ torch.stack([torch.cos(lo), torch.sin(lo)], 1)[:, :, None])[:, :, 0]
    v2 = (plane @ torch.stack([torch.cos(hi), torch.sin(hi)], 1)[:, :, None])[:, :, 0]
    v1 = v1 * torch.where(v1.sum(1, keepdim=True) < 0, -1.0, 1.0)
    v2 = v2 * torch.where(v2.sum(1, keepdim=True) < 0, -1.0, 1.0)
    first = (v1[:, 0] > v2[:, 0])[:, None]  # the azure/haematoxylin-like vector first: more absorption in red
    stains = torch.stack([torch.where(first, v1, v2), torch.where(first, v2, v1)], 2)  # (N,3,2)
    conc = torch.linalg.lstsq(stains.double(), od.double()).solution.float()  # (N,2,P)
    mx = torch.stack([_masked_quantile(conc[:, j], mask, 0.99) for j in range(2)], 1).clamp(min=1e-6)
    conc = conc * (torch.tensor(ref["maxConcentrations"], device=x.device)[None, :] / mx)[:, :, None]
    ref_stains = torch.tensor(ref["stains"], device=x.device).T  # (3,2)
    out = (io * torch.exp(-(ref_stains[None] @ conc))).clamp(0, 1)
    keep = (mask.sum(1) < ref["minPixels"])[:, None, None]
    return torch.where(keep, flat, out).reshape(n, 3, h, w)


def colour_normalise(x, ref=COLOUR_REFERENCE):
    """Maps each crop's lamp and stain onto one reference, by the physics of absorption (Beer-Lambert), so that a cell
    looks the same to the model from any microscope. x: float (N,3,H,W) RGB in [0,1].

    Pixels are ranked by R+G+B, ties by position (row-major); pixels darker than `minLuminance` (R+G+B, 8-bit: black
    fill of a rotated frame, never stain) are left out of the statistics. Per crop and channel:
    - white = the mean of the brightest fifth (plasma and glass: the lamp and the white balance);
    - each pixel's optical density od = -ln(max(I, 1/255) / white), at least 0;
    - dark = the mean od of the darkest tenth (nuclear chromatin: how strongly it is stained);
    - gain = reference dark / dark, clamped to [minGain, maxGain];
    - out = reference white * exp(-gain * od).
    A crop with fewer than `minPixels` such pixels is left as it is."""
    if COLOUR_METHOD == "macenko":
        return macenko_normalise(x)
    n, _, h, w = x.shape
    hw = h * w
    flat = x.reshape(n, 3, hw)
    lum = torch.round(flat * 255).sum(1)
    valid = lum >= ref["minLuminance"]
    key = torch.where(valid, lum, torch.full_like(lum, -1.0))
    order = torch.sort(key, dim=1, stable=True).indices
    k = valid.sum(1)
    rank = torch.arange(hw, device=x.device)[None, :]
    bright = rank >= (hw - torch.div(k, 5, rounding_mode="floor"))[:, None]
    dark = (rank >= (hw - k)[:, None]) & (rank < (hw - k + torch.div(k, 10, rounding_mode="floor"))[:, None])
    ranked = torch.gather(flat, 2, order[:, None, :].expand(n, 3, hw))
    white = ((ranked * bright[:, None, :]).sum(2) / bright.sum(1).clamp(min=1)[:, None]).clamp(min=1 / 255)
    od = (-torch.log(flat.clamp(min=1 / 255) / white[:, :, None])).clamp(min=0)
    ranked_od = torch.gather(od, 2, order[:, None, :].expand(n, 3, hw))
    dark_od = (ranked_od * dark[:, None, :]).sum(2) / dark.sum(1).clamp(min=1)[:, None]
    ref_dark = torch.tensor(ref["darkOpticalDensity"], device=x.device)
    if ref.get("sharedGain"):
        gain = (ref_dark.sum() / dark_od.sum(1, keepdim=True).clamp(min=1e-6)).clamp(ref["minGain"], ref["maxGain"]).expand(n, 3)
    else:
        gain = (ref_dark[None, :] / dark_od.clamp(min=1e-6)).clamp(ref["minGain"], ref["maxGain"])
    out = torch.tensor(ref["white"], device=x.device)[None, :, None] * torch.exp(-od * gain[:, :, None])
    keep = (k < ref["minPixels"])[:, None, None]
    return torch.where(keep, flat, out).reshape(n, 3, h, w)


def colour_parity(crops, gen):
    """Crops (uint8 NHWC RGB) and their colour-normalised floats (NCHW), for the C# parity test: the given validation
    crops, one with a black band (left out of the statistics), one nearly all black (left as it is), one of noise."""
    size = crops.shape[1]
    banded = crops[0].copy()
    banded[: size // 3] = 0
    dark = np.zeros_like(crops[0])
    dark[:5, :15] = 200
    noise = torch.randint(0, 256, crops[0].shape, generator=gen, dtype=torch.int64).numpy().astype(np.uint8)
    crops = np.concatenate([crops, banded[None], dark[None], noise[None]])
    x = to_input(crops, None, None, "cpu")[0]
    return {"shape": list(crops.shape), "rgb": crops.flatten().tolist(), "normalised": [round(float(v), 6) for v in x.flatten()]}


def to_input(batch_uint8, mean, std, device, colour=True):
    """uint8 NHWC crops as the model's float NCHW in [0,1], colour-normalised where the model is (`colour=False`:
    training, which normalises after augmenting)."""
    x = torch.from_numpy(batch_uint8).to(device).permute(0, 3, 1, 2).float() / 255.0
    if colour and COLOUR:
        x = colour_normalise(x)
    return x, (mean, std)


def normalise(x, mean, std):
    return (x - mean[None, :, None, None]) / std[None, :, None, None]


def predict(model, images, mean, std, device, batch=256):
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x, _ = to_input(images[i : i + batch], mean, std, device)
            out.append(model(normalise(x, mean, std)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, len(CLASSES))


DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


def predict_tta(model, images, mean, std, device, batch=128):
    """Mean logits over the 8 symmetries of the square (4 rotations, with and without a flip): a cell has no
    preferred orientation on the slide, so the model's answer should not have one either."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x, _ = to_input(images[i : i + batch], mean, std, device)
            x = normalise(x, mean, std)
            views = [torch.rot90(x.flip(3) if flip else x, k, dims=(2, 3)) for k, flip in DIHEDRAL]
            out.append(torch.stack([model(v).float() for v in views]).mean(0).cpu())
    return torch.cat(out) if out else torch.zeros(0, len(CLASSES))


# Test-time augmentation only where it can matter: a cell whose single view is this sure keeps that view's answer.
SURE_GRID = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999]


def logit_offsets(class_draws, other_share):
    """The prior correction of the other kinds (Saerens et al. 2002): for each class, ln(share expected in a smear /
    share of the training draws) for an other kind, 0 for the five. Training over-represents the other kinds (PBC's are
    selected cells, a fifth to a half of a source where a smear has about 1% of each), so without it a cell of a
    microscope not trained on that looks like none of the five well goes to an other kind (leave Kaggle out: 2,056 of
    2,472 lymphocytes became erythroblasts). The five are left as trained: their balance keeps rare, diagnostic classes
    (basophils, monocytes) found. None when other_share is None or no other kind was trained."""
    total = float(sum(class_draws.values()))
    if other_share is None or total <= 0 or not any(class_draws.get(c, 0) > 0 for c in OTHER):
        return None
    return [round(float(np.log(other_share / (class_draws[c] / total))), 4) if c in OTHER and class_draws.get(c, 0) > 0 else 0.0
            for c in CLASSES]


def corrected(logits, offsets):
    """(logits with the prior correction, each cell's class without it): as LeukocyteClassifier.Classify."""
    raw = logits.argmax(1).numpy()
    return (logits + torch.tensor(offsets, dtype=logits.dtype) if offsets else logits), raw


def sure_mask(plain_logits, sure_confidence, offsets=None):
    """Cells whose single (unrotated) view has a softmax top probability (temperature 1, after the prior correction
    `offsets`) of at least sure_confidence."""
    if sure_confidence is None:
        return torch.zeros(len(plain_logits), dtype=torch.bool)
    return F.softmax(corrected(plain_logits.float(), offsets)[0], 1).max(1).values >= sure_confidence


def choose_sure_confidence(plain, tta, offsets=None):
    """The lowest SURE_GRID value at which, on every validation source, each cell the single view is sure of gets the
    class the 8 views give it, both with the prior correction `offsets` (so the policy answers as dihedral8 did on
    validation, at a fraction of the cost); None when no value does."""
    def cls(logits):
        return corrected(logits, offsets)[0].argmax(1)
    for t in SURE_GRID:
        if all(bool((cls(plain[n])[m] == cls(tta[n])[m]).all()) for n in plain for m in [sure_mask(plain[n], t, offsets)]):
            return t
    return None


def serve_logits(wrapped, images, mean, std, device, tta, sure_confidence, offsets=None):
    """(logits, distance, single-view mask) as the C# classifier's Infer serves them: with test-time augmentation, the
    mean over the 8 symmetries except for the cells the single view is sure of (sure_confidence, with the prior
    correction `offsets`), which keep it. The logits are without the correction (`corrected` adds it)."""
    plain, plain_distance = predict_distance(wrapped, images, mean, std, device, False)
    if not tta:
        return plain, plain_distance, torch.ones(len(plain), dtype=torch.bool)
    logits, distance = predict_distance(wrapped, images, mean, std, device, True)
    sure = sure_mask(plain, sure_confidence, offsets)
    return torch.where(sure[:, None], plain, logits), np.where(sure.numpy(), plain_distance, distance), sure


class WithDistance(torch.nn.Module):
    """The classifier plus a second output: each cell's distance to the training cells in the model's feature space,
    the smallest Mahalanobis distance to a class mean under the pooled within-class covariance (Lee et al. 2018),
    divided by the feature count. Cells from a stain, camera or cell kind unlike training are far from every class
    even when the softmax is confident, so this flags them where the probability cannot."""

    def __init__(self, model, whiten, means):
        super().__init__()
        self.model = model
        self.register_buffer("whiten", whiten)          # d x d: z = f @ whiten has identity covariance
        self.register_buffer("centres", means @ whiten)  # classes x d, whitened

    def forward(self, x):
        f = self.model.features(x)
        z = f @ self.whiten
        d = ((z[:, None, :] - self.centres[None, :, :]) ** 2).sum(2) / z.shape[1]
        return self.model.head(f), d.min(1).values


def features(model, images, mean, std, device, batch=256):
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x, _ = to_input(images[i : i + batch], mean, std, device)
            out.append(model.features(normalise(x, mean, std)).float().cpu())
    return torch.cat(out)


def fit_distance(model, imgs, labels, mean, std, device, shrinkage=0.05):
    """Class means and the pooled within-class covariance of the training crops' features (shrunk towards its mean
    variance so that it inverts), returned as the whitening matrix of its inverse and the means."""
    f = features(model, imgs, mean, std, device).double()
    labels = torch.as_tensor(labels)
    present = sorted(set(labels.tolist()))
    means = torch.stack([f[labels == c].mean(0) for c in present])
    centred = f - means[[present.index(int(c)) for c in labels]]
    cov = centred.T @ centred / len(f)
    cov = (1 - shrinkage) * cov + shrinkage * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype)
    whiten = torch.linalg.cholesky(torch.linalg.inv(cov))  # inv(cov) = L L^T, so |(f - m) L|^2 is the Mahalanobis distance
    return whiten.float(), means.float()


def predict_distance(wrapped, images, mean, std, device, tta, batch=128):
    """(logits, distance) as served: with test-time augmentation both are the means over the 8 symmetries."""
    wrapped.eval()
    logits, dist = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x, _ = to_input(images[i : i + batch], mean, std, device)
            x = normalise(x, mean, std)
            views = [torch.rot90(x.flip(3) if flip else x, k, dims=(2, 3)) for k, flip in DIHEDRAL] if tta else [x]
            outs = [wrapped(v) for v in views]
            logits.append(torch.stack([o[0] for o in outs]).mean(0).cpu())
            dist.append(torch.stack([o[1] for o in outs]).mean(0).cpu())
    return torch.cat(logits), torch.cat(dist).numpy()


def metrics(logits, labels):
    pred = logits.argmax(1).numpy()
    labels = np.asarray(labels)
    per_class = {}
    for c, name in enumerate(CLASSES):
        tp = int(((pred == c) & (labels == c)).sum())
        fp = int(((pred == c) & (labels != c)).sum())
        fn = int(((pred != c) & (labels == c)).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        per_class[name] = {"precision": round(p, 4), "recall": round(r, 4),
                           "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0, "support": int((labels == c).sum())}
    acc = float((pred == labels).mean()) if len(labels) else 0.0
    present = [v for v in per_class.values() if v["support"] > 0]
    return {"samples": int(len(labels)), "accuracy": round(acc, 4),
            "macroPrecision": round(float(np.mean([v["precision"] for v in present])), 4) if present else 0.0,
            "macroRecall": round(float(np.mean([v["recall"] for v in present])), 4) if present else 0.0,
            "perClass": per_class}


def fit_temperature(logits, labels):
    """Temperature scaling (Guo et al. 2017): one scalar minimising validation NLL."""
    t = torch.ones(1, requires_grad=True)
    y = torch.as_tensor(labels)
    opt = torch.optim.LBFGS([t], lr=0.05, max_iter=200)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / t.clamp(min=0.05), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(t.detach().clamp(min=0.05))


def review_threshold(probs, labels, target):
    """Smallest top-probability threshold whose accepted cells are at least `target` accurate on validation."""
    top, pred = probs.max(1)
    correct = (pred.numpy() == np.asarray(labels))
    order = np.argsort(-top.numpy())
    best = 1.0
    for cut in np.unique(top.numpy())[::-1]:
        accepted = top.numpy() >= cut
        if correct[accepted].mean() >= target:
            best = float(cut)
    accepted = top.numpy() >= best
    return best, float(accepted.mean()), float(correct[accepted].mean()) if accepted.any() else 0.0


def sha256_of(paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def parse_pairs(values, what):
    out = {}
    for v in values or []:
        if "=" not in v:
            sys.exit(f"train: {what} must be NAME=VALUE, got '{v}'")
        k, val = v.split("=", 1)
        out[k] = val
    return out


def typical(evidence, distance, min_evidence, max_distance):
    """Cells like the training data: enough evidence (logsumexp of the logits) and near a training class in feature space."""
    return (evidence >= min_evidence) & (distance <= max_distance)


def review_rule(probs, evidence, distance, familiar, labels, sources, target, min_evidence, max_distance):
    """The review threshold: the smallest top-probability cut at which the accepted cells of every validation source are
    at least `target` correct (the largest of the per-source cuts), cells of an "other" kind always flagged, and cells
    unlike the training data (`typical`) or of an unfamiliar stain (`familiar` false, stain.py) flagged."""
    top, pred = probs.max(1)
    top, pred = top.numpy(), pred.numpy()
    labels, sources = np.asarray(labels), np.asarray(sources)
    eligible = (pred < len(DIFFERENTIAL)) & typical(evidence, distance, min_evidence, max_distance) & familiar
    cuts = {}
    for src in sorted(set(sources)):
        m = sources == src
        best = 1.0
        for cut in np.unique(top[m])[::-1]:
            acc = eligible[m] & (top[m] >= cut)
            if acc.any() and (pred[m][acc] == labels[m][acc]).mean() >= target:
                best = float(cut)
        # Halfway down to the next lower probability, not at the cut cell's own: the card's rounding and C#'s float
        # arithmetic then keep that cell on the same side (at its own value, rounding up lost it: 97.96% accepted correct).
        lower = top[m][top[m] < best]
        cuts[src] = round((best + float(lower.max())) / 2, 6) if best < 1.0 and lower.size else best
    return max(cuts.values()), cuts


def review_figures(probs, evidence, distance, familiar, labels, threshold, min_evidence, max_distance):
    top, pred = probs.max(1)
    top, pred = top.numpy(), pred.numpy()
    labels = np.asarray(labels)
    accepted = (top >= threshold) & (pred < len(DIFFERENTIAL)) & typical(evidence, distance, min_evidence, max_distance) & familiar
    other = np.isin(labels, [CLASSES.index(c) for c in OTHER])
    return {"cells": int(len(labels)), "coverage": round(float(accepted.mean()), 4) if len(labels) else 0.0,
            "acceptedAccuracy": round(float((pred[accepted] == labels[accepted]).mean()), 4) if accepted.any() else None,
            # an "other" cell is silently one of the five when it is given a differential class and not flagged
            "otherSilentlyInDifferential": round(float(accepted[other].mean()), 4) if other.any() else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", action="append", required=True,
                    help="NAME=DIR[,DIR...]: a source (one microscope/laboratory) and its crop folders (leuko segment --dataset)")
    ap.add_argument("--groups", action="append", help="NAME=groups.tsv: each frame's source photograph, for grouped validation")
    ap.add_argument("--weight", action="append",
                    help="NAME=W: crops of that source drawn per epoch, as a multiple of its training count (default 1)")
    ap.add_argument("--hold-out", help="leave-one-source-out: train on every other source, report on this one, export nothing")
    ap.add_argument("--out", required=True, help="folder for the .onnx, model card and parity vectors (or the hold-out report)")
    ap.add_argument("--name", default="leukocyte-cnn")
    ap.add_argument("--window", type=float, default=18,
                    help="the crops' physical window in µm (SegmentationOptions.CropWindow when they were cut), written into the card")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--fold", help="K/N: grouped cross-validation, validating on fold K of N of each class's photographs "
                    "(each source's); N runs validate every photograph once. Default: --val-fraction of them")
    ap.add_argument("--review-accuracy", type=float, default=0.98,
                    help="accepted cells (no needsReview) of every validation source are at least this accurate")
    ap.add_argument("--evidence-quantile", type=float, default=0.02,
                    help="cells with less evidence than this quantile of validation cells are flagged as unlike training")
    ap.add_argument("--distance-quantile", type=float, default=0.05,
                    help="cells farther from the training classes in feature space than all but this fraction of each "
                         "source's validation cells are flagged as unlike training")
    ap.add_argument("--stain-quantile", type=float, default=0.99,
                    help="a crop is of a familiar stain when its stain distance to a training source is within this quantile "
                         "of that source's training crops (stain.py)")
    ap.add_argument("--field-quantile", type=float, default=0.995,
                    help="a field is of a familiar microscope when its field distance to a training source is within this "
                         "quantile of that source's training fields (stain.py's field check)")
    ap.add_argument("--other-share", type=float, default=0.01,
                    help="each other kind's expected share of the cells of a smear, for the prior correction of its logit "
                         "(logit_offsets; written into the card as logitOffsets); 0 or less: no correction")
    ap.add_argument("--seed", type=int, default=20240501)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--ema", type=float, default=0.995,
                    help="decay of the exponential moving average of the weights (and batch-norm statistics) that is "
                         "validated and exported; 0 turns it off")
    ap.add_argument("--colour-normalisation", choices=["none", *COLOUR_METHODS], default="none",
                    help="map every crop's lamp and stain onto one reference before the model (colour_normalise)")
    ap.add_argument("--field-normalisation", choices=["none", "red-cell-od"], default="none",
                    help="map every crop by its own field's background and red cells (field_normalise; needs fields.tsv)")
    ap.add_argument("--stain-vector-jitter", type=float, default=0.0,
                    help="each stain vector's channels scaled by U(1-v, 1+v) per crop in augmentation (stain_jitter); 0: off")
    ap.add_argument("--grayscale-share", type=float, default=0.0,
                    help="share of the crops seen without colour in augmentation (grayscale_jitter); 0: off")
    ap.add_argument("--amplitude-mix", type=float, default=0.0,
                    help="share of the crops given a mix of another crop's Fourier amplitude in augmentation (amplitude_mix); 0: off")
    ap.add_argument("--amplitude-band", type=float, default=1.0,
                    help="the share of the spectrum (of the Nyquist frequency, both axes) --amplitude-mix mixes; 1: all")
    ap.add_argument("--random-convolution", type=float, default=0.0,
                    help="share of the crops mixed with a random convolution of themselves in augmentation (random_convolution); 0: off")
    ap.add_argument("--mixstyle", type=float, default=0.0,
                    help="probability per batch of MixStyle after blocks 1 and 2 in training (add_mixstyle); 0: off")
    ap.add_argument("--resolution-jitter", type=float, default=1.0,
                    help="most a crop is downsampled by in augmentation (resolution_jitter); 1: off")
    ap.add_argument("--merge-other", action="store_true",
                    help="one OTHER class for the kinds reported apart instead of one each (dataset.merge_other; give "
                         "--other-share the three kinds' sum, e.g. 0.03); the C# pipeline reads the classes from the card")
    args = ap.parse_args()
    if args.merge_other:
        dataset.merge_other()
    global COLOUR, COLOUR_METHOD, RESOLUTION_JITTER, STAIN_VECTOR_JITTER, GRAYSCALE_SHARE, AMPLITUDE_MIX, AMPLITUDE_BAND, RANDOM_CONVOLUTION
    COLOUR = args.colour_normalisation != "none"
    if args.colour_normalisation == "white-od-gain":
        COLOUR_METHOD = args.colour_normalisation
        COLOUR_REFERENCE["sharedGain"] = True
    elif args.colour_normalisation == "macenko":
        COLOUR_METHOD = args.colour_normalisation
    RESOLUTION_JITTER = args.resolution_jitter
    STAIN_VECTOR_JITTER = args.stain_vector_jitter
    GRAYSCALE_SHARE = args.grayscale_share
    AMPLITUDE_MIX = args.amplitude_mix
    AMPLITUDE_BAND = args.amplitude_band
    RANDOM_CONVOLUTION = args.random_convolution

    started = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    log(f"torch {torch.__version__} on {device}, {args.threads} threads")

    dirs = {k: v.split(",") for k, v in parse_pairs(args.source, "--source").items()}
    groups = parse_pairs(args.groups, "--groups")
    weights = {k: float(v) for k, v in parse_pairs(args.weight, "--weight").items()}
    if args.hold_out and args.hold_out not in dirs:
        sys.exit(f"train: --hold-out {args.hold_out} is not a --source")
    sources = {n: load_source(n, d, groups.get(n)) for n, d in dirs.items()}
    field_reference = None
    # each crop's field colours (fields.tsv, C# FieldColours): for the field check and --field-normalisation
    fields = {n: load_fields(d) for n, d in dirs.items()} if all(os.path.exists(os.path.join(p, "fields.tsv")) for d in dirs.values() for p in d) else None
    if fields is None:
        log("no fields.tsv beside every source's crops (crops cut by an older leuko segment --dataset): no field check")
    if args.field_normalisation != "none":
        assert fields is not None, "--field-normalisation needs fields.tsv beside the crops"
        # the reference red-cell density: the median over the training sources of each one's median (never the held-out source's)
        field_reference = {**FIELD_REFERENCE, "method": args.field_normalisation, "redOpticalDensity": round(float(np.median(
            [np.median(field_red_od(f)[field_red_od(f) > 0]) for n, f in fields.items() if n != args.hold_out])), 4)}
        for n in sources:
            red_od = field_red_od(fields[n])
            log(f"{n}: field white median {np.median(fields[n][:, :3], 0).tolist()} (BGR), red-cell OD median "
                f"{np.median(red_od[red_od > 0]):.3f}, {np.mean(red_od < FIELD_REFERENCE['minRedOpticalDensity']):.1%} without red cells")
            sources[n] = (field_normalise(sources[n][0], fields[n], field_reference["redOpticalDensity"]), *sources[n][1:])
        log(f"field normalisation: {field_reference}")
    size = next(iter(sources.values()))[0].shape[1]
    assert all(s[0].shape[1:] == (size, size, 3) for s in sources.values()), "all crops must have one size"

    rng = random.Random(args.seed)
    split = {}
    for name, (imgs, labels, gids, _) in sources.items():
        if name == args.hold_out:
            continue
        train, val = grouped_split(labels, gids, args.val_fraction, rng, parse_fold(args.fold))
        split[name] = (train, val)
        log(f"{name}: train {train.sum()} crops / {len(set(np.array(gids)[train]))} groups, "
            f"validation {val.sum()} / {len(set(np.array(gids)[val]))}")

    train_names = list(split)
    train_imgs = {n: sources[n][0][split[n][0]] for n in train_names}
    train_labels = {n: sources[n][1][split[n][0]] for n in train_names}
    val = {n: (sources[n][0][split[n][1]], sources[n][1][split[n][1]], np.array(sources[n][2])[split[n][1]]) for n in train_names}
    all_train = np.concatenate(list(train_imgs.values()))
    # The stain and camera of each training source (stain.py): cells of another are flagged whatever the CNN says.
    stain_domain = stain.fit_domain({n: stain.fingerprints(train_imgs[n]) for n in train_names}, args.stain_quantile)
    val_familiar = {n: stain.distance(stain.fingerprints(val[n][0]), stain_domain) <= 1 for n in train_names}
    val_crop_familiar = val_familiar
    # The field check: the same for each image's glass and red cells (stain.py's field_fingerprints), flagged as either is.
    field_domain = None
    if fields is not None:
        field_fps = {n: stain.field_fingerprints(fields[n]) for n in sources}
        field_domain = stain.fit_domain({n: field_fps[n][split[n][0]] for n in train_names}, args.field_quantile, stain.FIELD_FEATURES)
        val_field_familiar = {n: stain.field_distance(field_fps[n][split[n][1]], field_domain) <= 1 for n in train_names}
        log("field stain domain: validation unfamiliar " + ", ".join(f"{n} {1 - val_field_familiar[n].mean():.4f}" for n in train_names))
        val_familiar = {n: val_familiar[n] & val_field_familiar[n] for n in train_names}
    log("stain domain: validation unfamiliar " + ", ".join(f"{n} {1 - val_crop_familiar[n].mean():.4f}" for n in train_names))
    if COLOUR:
        sample = np.random.default_rng(args.seed).choice(len(all_train), min(5000, len(all_train)), replace=False)
        pixels = to_input(all_train[sample], None, None, "cpu")[0].permute(0, 2, 3, 1).reshape(-1, 3).double()
        mean = pixels.mean(0).float().to(device)
        std = pixels.std(0).float().to(device)
    else:
        mean = torch.tensor(all_train.reshape(-1, 3).mean(0) / 255.0, dtype=torch.float32, device=device)
        std = torch.tensor(all_train.reshape(-1, 3).std(0) / 255.0, dtype=torch.float32, device=device)
    log(f"input {size}x{size} RGB, mean {mean.tolist()}, std {std.tolist()}")

    model = LeukocyteCnn(len(CLASSES)).to(device)
    counts = layer_counts(model)
    mixstyle_hooks = add_mixstyle(model, torch.Generator().manual_seed(args.seed + 1), args.mixstyle) if args.mixstyle > 0 else []
    assert counts == {"conv": 11, "batchNorm": 8, "relu": 8, "dropout": 4}, counts
    draws = {n: int(len(train_imgs[n]) * weights.get(n, 1.0)) for n in train_names}
    per_epoch = sum(draws.values())
    steps = args.epochs * math.ceil(per_epoch / args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    ema = None
    if args.ema > 0:
        def ema_step(avg, new, n):
            d = min(args.ema, (1 + float(n)) / (10 + float(n)))
            return d * avg + (1 - d) * new

        ema = torch.optim.swa_utils.AveragedModel(model, use_buffers=True, avg_fn=ema_step)
    gen = torch.Generator().manual_seed(args.seed)
    np_rng = np.random.default_rng(args.seed)

    best = None
    history = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.time()
        idx = {n: np_rng.choice(len(train_imgs[n]), draws[n], replace=draws[n] > len(train_imgs[n])) for n in train_names}
        imgs = np.concatenate([train_imgs[n][idx[n]] for n in train_names])
        labels = np.concatenate([train_labels[n][idx[n]] for n in train_names])
        order = np_rng.permutation(len(imgs))
        total, seen = 0.0, 0
        for i in range(0, len(order), args.batch):
            b = order[i : i + args.batch]
            x, _ = to_input(imgs[b], mean, std, device, colour=False)
            x = augment(x, gen)
            if COLOUR:
                x = colour_normalise(x)
            x = normalise(x, mean, std)
            y = torch.from_numpy(labels[b]).to(device)
            loss = F.cross_entropy(model(x), y, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            total += float(loss) * len(b)
            seen += len(b)
        served = ema.module if ema is not None else model
        scores = {n: metrics(predict(served, val[n][0], mean, std, device), val[n][1]) for n in train_names}
        # Selection score: the weakest source's grouped-validation accuracy, then the mean (never the held-out source).
        score = (min(s["accuracy"] for s in scores.values()), float(np.mean([s["accuracy"] for s in scores.values()])))
        history.append({"epoch": epoch, "loss": round(total / seen, 4), **{f"{n}Accuracy": s["accuracy"] for n, s in scores.items()}})
        log(f"epoch {epoch}/{args.epochs} loss {total / seen:.4f} "
            + " ".join(f"{n} {s['accuracy']:.4f}" for n, s in scores.items())
            + f" ({time.time() - t0:.0f}s, {seen / (time.time() - t0):.0f} crops/s)")
        if best is None or score > best[0]:
            best = (score, epoch, {k: v.detach().clone() for k, v in served.state_dict().items()})

    score, best_epoch, state = best
    model.load_state_dict(state)
    for h in mixstyle_hooks:
        h.remove()
    log(f"chose epoch {best_epoch} on grouped validation: {score}")

    # Test-time augmentation is kept only if it helps the weakest source on grouped validation.
    plain = {n: predict(model, val[n][0], mean, std, device) for n in train_names}
    tta = {n: predict_tta(model, val[n][0], mean, std, device) for n in train_names}

    def selection(logits):
        acc = [metrics(logits[n], val[n][1])["accuracy"] for n in train_names]
        return (min(acc), float(np.mean(acc)))
    use_tta = selection(tta) > selection(plain)
    log(f"validation without test-time augmentation {selection(plain)}, with {selection(tta)}: {'dihedral8' if use_tta else 'none'}")
    # The prior correction of the other kinds (logit_offsets), from this training's draws per class; a cell it moves
    # out of an other kind is flagged (possible-other-cell), so it is excluded from acceptance as an unfamiliar stain is.
    class_draws = {c: 0.0 for c in CLASSES}
    for n in train_names:
        per_class = np.bincount(train_labels[n], minlength=len(CLASSES))  # not `counts`: the layer counts go into the card
        for c in range(len(CLASSES)):
            class_draws[CLASSES[c]] += draws[n] * per_class[c] / max(1, len(train_labels[n]))
    offsets = logit_offsets(class_draws, args.other_share if args.other_share > 0 else None)
    log(f"prior correction of the other kinds (a {args.other_share} share each in a smear): {offsets}")
    sure_confidence = choose_sure_confidence(plain, tta, offsets) if use_tta else None
    if use_tta:
        log(f"a single view is kept where its softmax top probability is at least {sure_confidence}: "
            + ", ".join(f"{n} {float(sure_mask(plain[n], sure_confidence, offsets).float().mean()):.1%} of validation cells" for n in train_names))
    # Feature-space distance to the training cells: fitted on (unaugmented) training crops, at most 3,000 per source.
    fit_idx = {n: np_rng.choice(len(train_imgs[n]), min(3000, len(train_imgs[n])), replace=False) for n in train_names}
    whiten, centres = fit_distance(model, np.concatenate([train_imgs[n][fit_idx[n]] for n in train_names]),
                                   np.concatenate([train_labels[n][fit_idx[n]] for n in train_names]), mean, std, device)
    wrapped = WithDistance(model, whiten.to(device), centres.to(device))
    val_served = {n: serve_logits(wrapped, val[n][0], mean, std, device, use_tta, sure_confidence, offsets) for n in train_names}
    val_distance = {n: val_served[n][1] for n in train_names}
    max_distance = round(max(float(np.quantile(val_distance[n], 1 - args.distance_quantile)) for n in train_names), 6)
    log(f"feature distance: 95th percentiles " + ", ".join(f"{n} {np.quantile(val_distance[n], 0.95):.3f}" for n in train_names)
        + f"; flagged beyond {max_distance:.3f}")
    val_eligible = {}
    for n in train_names:
        logits_n, raw_n = corrected(val_served[n][0], offsets)
        val_served[n] = (logits_n, val_served[n][1], val_served[n][2])
        val_eligible[n] = val_familiar[n] & (raw_n < len(DIFFERENTIAL))
    val_logits = {n: val_served[n][0] for n in train_names}
    all_distance = np.concatenate([val_distance[n] for n in train_names])
    all_familiar = np.concatenate([val_eligible[n] for n in train_names])
    all_logits = torch.cat([val_logits[n] for n in train_names])
    all_labels = np.concatenate([val[n][1] for n in train_names])
    all_sources = np.concatenate([[n] * len(val[n][1]) for n in train_names])
    temperature = round(fit_temperature(all_logits, all_labels), 4)  # as the card stores it, so C# computes the same probabilities
    evidence = torch.logsumexp(all_logits, 1).numpy()
    min_evidence = round(float(np.quantile(evidence, args.evidence_quantile)), 6)
    probs = F.softmax(all_logits / temperature, dim=1)
    threshold, cuts = review_rule(probs, evidence, all_distance, all_familiar, all_labels, all_sources, args.review_accuracy, min_evidence, max_distance)
    review = {}
    for n in train_names:
        m = all_sources == n
        review[n] = review_figures(probs[m], evidence[m], all_distance[m], all_familiar[m], all_labels[m], threshold, min_evidence, max_distance)
    log(f"temperature {temperature:.3f}; review below {threshold:.3f} (per-source cuts {cuts}), evidence below {min_evidence:.3f}: {review}")
    validation = {n: metrics(val_logits[n], val[n][1]) for n in train_names}
    os.makedirs(args.out, exist_ok=True)

    if args.hold_out:
        imgs, labels, _, names = sources[args.hold_out]
        logits, dist, held_sure = serve_logits(wrapped, imgs, mean, std, device, use_tta, sure_confidence, offsets)
        raw_logits = logits
        logits, held_raw = corrected(logits, offsets)
        ev = torch.logsumexp(logits, 1).numpy()
        held_probs = F.softmax(logits / temperature, 1)
        held_stain = stain.distance(stain.fingerprints(imgs), stain_domain)
        held_crop_stain = held_stain
        if field_domain is not None:
            held_stain = np.maximum(held_stain, stain.field_distance(field_fps[args.hold_out], field_domain))
        five = held_raw < len(DIFFERENTIAL)  # the class without the prior correction: an other kind is flagged
        familiar = (held_stain <= 1) & five
        everywhere = five
        present = sorted(set(labels.tolist()))
        trained = sorted(set(np.concatenate(list(train_labels.values())).tolist()))
        report = {
            "heldOut": args.hold_out, "trainedOn": train_names, "colourNormalisation": args.colour_normalisation, "fieldNormalisation": field_reference, "resolutionJitter": args.resolution_jitter, "stainVectorJitter": args.stain_vector_jitter, "grayscaleShare": args.grayscale_share, "amplitudeMix": args.amplitude_mix, "amplitudeBand": args.amplitude_band, "randomConvolution": args.random_convolution, "mixStyle": args.mixstyle, "mergeOther": args.merge_other, "otherShare": args.other_share, "chosenEpoch": best_epoch, "testTimeAugmentation": "dihedral8" if use_tta else "none",
            "sureConfidence": sure_confidence, "heldOutSingleView": round(float(held_sure.float().mean()), 4),
            "logitOffsets": offsets, "heldOutAll": metrics(logits, labels), "heldOutAllUncorrected": metrics(raw_logits, labels),
            # cells of a class no training source has cannot be right; the figure a laboratory can compare is on the classes trained
            "heldOutTrainedClasses": metrics(logits[np.isin(labels, trained)], labels[np.isin(labels, trained)]),
            "heldOutReview": review_figures(held_probs, ev, dist, familiar, labels, threshold, min_evidence, max_distance),
            # the same rule without the stain check, and without both it and the feature-distance bound: what each adds
            # on a microscope not trained on
            "heldOutReviewWithoutStain": review_figures(held_probs, ev, dist, everywhere, labels, threshold, min_evidence, max_distance),
            "heldOutReviewWithoutDistance": review_figures(held_probs, ev, np.zeros_like(dist), everywhere, labels, threshold, min_evidence, max_distance),
            "heldOutFlaggedAsAtypical": round(float((~typical(ev, dist, min_evidence, max_distance)).mean()), 4),
            "heldOutUnfamiliarStain": round(float((held_stain > 1).mean()), 4),
            "heldOutUnfamiliarCropStain": round(float((held_crop_stain > 1).mean()), 4),
            "classesPresent": [CLASSES[c] for c in present], "classesTrained": [CLASSES[c] for c in trained],
            "validation": validation, "validationReview": review, "seconds": round(time.time() - started), "history": history,
        }
        path = os.path.join(args.out, f"loso-{args.hold_out}.json")
        with open(path, "w") as f:
            json.dump(report, f, indent=2)
        # Every left-out cell, so that a review rule can be studied without training again.
        top, pred = held_probs.max(1)
        # The served logits (before the temperature) and the single view's, per class, so that a decision rule (a
        # class prior, the single-view policy) can be studied on a microscope not trained on.
        held_plain = predict(model, imgs, mean, std, device)
        with open(os.path.join(args.out, f"loso-{args.hold_out}.cells.tsv"), "w") as f:
            f.write("crop\tlabel\tpredicted\tconfidence\tevidence\tdistance\tstainDistance\tsingleView\t"
                    + "\t".join(f"logit:{c}" for c in CLASSES) + "\t" + "\t".join(f"single:{c}" for c in CLASSES) + "\n")
            for i in range(len(labels)):
                f.write(f"{names[i]}\t{CLASSES[labels[i]]}\t{CLASSES[int(pred[i])]}\t{float(top[i]):.5f}\t{ev[i]:.4f}\t{dist[i]:.4f}\t{held_stain[i]:.4f}\t{int(held_sure[i])}\t"
                        + "\t".join(f"{float(v):.4f}" for v in raw_logits[i]) + "\t" + "\t".join(f"{float(v):.4f}" for v in held_plain[i]) + "\n")
        torch.save({"state": model.state_dict(), "mean": mean, "std": std, "temperature": temperature, "threshold": threshold,
                    "minEvidence": min_evidence, "maxDistance": max_distance, "sureConfidence": sure_confidence, "logitOffsets": offsets},
                   os.path.join(args.out, f"loso-{args.hold_out}.pt"))
        log(f"held out {args.hold_out}: accuracy {report['heldOutAll']['accuracy']:.4f} (trained classes "
            f"{report['heldOutTrainedClasses']['accuracy']:.4f}), review {report['heldOutReview']}; wrote {path}")
        return 0

    model.eval().cpu()
    wrapped = wrapped.eval().cpu()
    onnx_path = os.path.join(args.out, args.name + ".onnx")
    dummy = torch.zeros(1, 3, size, size)
    export_args = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        export_args["dynamo"] = False  # PyTorch 2.x: the TorchScript exporter, as on 1.13, for the same graph
    torch.onnx.export(wrapped, dummy, onnx_path, input_names=["input"], output_names=["logits", "distance"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "distance": {0: "batch"}},
                      opset_version=13, **export_args)

    # Parity vectors: a validation crop of each class present and one random tensor, with PyTorch's logits.
    parity_inputs = []
    for c in range(len(CLASSES)):
        for n in train_names:
            hits = np.where(val[n][1] == c)[0]
            if len(hits):
                x, _ = to_input(val[n][0][hits[0] : hits[0] + 1], mean.cpu(), std.cpu(), "cpu")
                parity_inputs.append(normalise(x, mean.cpu(), std.cpu()))
                break
    parity_inputs.append(torch.randn(1, 3, size, size, generator=gen))
    px = torch.cat(parity_inputs)
    with torch.no_grad():
        plogits, pdist = wrapped(px)
    parity = {"inputShape": list(px.shape), "inputs": px.flatten().tolist(), "logits": plogits.tolist(),
              "distance": pdist.tolist(), "stain": stain.parity_vectors(
                  {n: (val[n][0],) for n in train_names}, {n: (None, np.ones(len(val[n][1]), dtype=bool)) for n in train_names},
                  stain_domain)}
    if field_domain is not None:
        parity["field"] = stain.field_parity_vectors({n: fields[n][split[n][1]] for n in train_names},
                                                     {n: (None, np.ones(split[n][1].sum(), dtype=bool)) for n in train_names}, field_domain)
    if COLOUR:
        parity["colour"] = colour_parity(np.array(parity["stain"]["rgb"], dtype=np.uint8).reshape(parity["stain"]["shape"]), gen)
    with open(os.path.join(args.out, args.name + ".parity.json"), "w") as f:
        json.dump(parity, f)

    crop_files = []
    scales = {}
    for n, ds in dirs.items():
        mpp = []
        for d in ds:
            crop_files.append(os.path.join(d, "dataset.tsv"))
            with open(os.path.join(d, "dataset.tsv")) as f:
                header = next(f).rstrip("\n").split("\t")
                for line in f:
                    row = dict(zip(header, line.rstrip("\n").split("\t")))
                    crop_files.append(os.path.join(d, row["crop"]))
                    if row.get("micronsPerPixel"):
                        mpp.append(float(row["micronsPerPixel"]))
        if mpp:
            scales[n] = {"medianMicronsPerPixel": round(float(np.median(mpp)), 4),
                         "p10": round(float(np.quantile(mpp, 0.1)), 4), "p90": round(float(np.quantile(mpp, 0.9)), 4)}
    with open(onnx_path, "rb") as f:
        onnx_sha = hashlib.sha256(f.read()).hexdigest()

    card = {
        "name": args.name,
        "version": time.strftime("%Y.%m.%d") + f"-e{best_epoch}",
        "onnxFile": os.path.basename(onnx_path),
        "onnxSha256": onnx_sha,
        "classes": CLASSES,
        "differentialClasses": DIFFERENTIAL,
        "otherClasses": OTHER,
        "input": {"name": "input", "layout": "NCHW", "width": size, "height": size, "colourOrder": "RGB",
                  "scale": 1 / 255.0, "mean": [round(v, 6) for v in mean.tolist()], "std": [round(v, 6) for v in std.tolist()],
                  "windowMicrons": args.window,
                  **({"colourNormalisation": {"method": COLOUR_METHOD, **COLOUR_REFERENCE}} if COLOUR else {}),
                  "resize": f"the segmenter's fixed physical window (SegmentationOptions.CropWindow, {args.window:g} µm) around the cell, resized with Crops.Resize (area when shrinking, bilinear when enlarging)"},
        "output": {"name": "logits", "softmaxTemperature": temperature, "distance": "distance"},
        "testTimeAugmentation": "dihedral8" if use_tta else "none",
        **({"sureConfidence": sure_confidence,
            "singleViewShare": {n: round(float(val_served[n][2].float().mean()), 4) for n in train_names}} if use_tta else {}),
        **({"logitOffsets": offsets, "otherShare": args.other_share} if offsets else {}),
        "flopsPerView": flops(onnx_path),
        "reviewThreshold": threshold,
        "minEvidence": min_evidence,
        "maxDistance": max_distance,
        "stainDomain": {**stain_domain, "validationUnfamiliar": {n: round(float(1 - val_crop_familiar[n].mean()), 4) for n in train_names}},
        **({"fieldStainDomain": {**field_domain, "validationUnfamiliar": {n: round(float(1 - val_field_familiar[n].mean()), 4) for n in train_names}}}
           if field_domain is not None else {}),
        "reviewPolicy": (f"needsReview when the calibrated top probability is below reviewThreshold, when the cell's evidence "
                         f"(logsumexp of the logits) is below minEvidence (the {args.evidence_quantile:.0%} least typical validation cells), "
                         f"when its feature-space distance to the training classes (output 'distance') is above maxDistance "
                         f"(all but {args.distance_quantile:.0%} of each training source's validation cells are nearer), "
                         f"when its stain distance (stainDomain: the crop's colour fingerprint against each training source's) is above 1 "
                         f"(all but {1 - args.stain_quantile:.0%} of each source's training crops are within), "
                         f"or when the class is not one of the five of the differential, or would not be without the prior correction "
                         f"of the other kinds (logitOffsets: ln({args.other_share:g} / training share) added to each other kind's logit). The threshold is the largest of the per-source "
                         f"thresholds at which accepted validation cells are {args.review_accuracy:.0%} correct: "
                         + "; ".join(f"{n} {r['coverage']:.1%} accepted, {r['acceptedAccuracy']:.2%} of them correct" for n, r in review.items()
                                     if r["acceptedAccuracy"] is not None)),
        "architecture": {
            "summary": "Anand et al. 2024 CNN: 4 conv blocks, 11 conv, 8 batch-norm, 8 ReLU, 4 dropout; blocks 3-4 use "
                       "factorised 3x1+1x3 convolutions; global average pooling and a linear head",
            "layers": counts, "filters": list(model.filters), "parameters": sum(p.numel() for p in model.parameters())},
        "training": {
            "data": {n: {"crops": int(len(sources[n][1])), "groups": len(set(sources[n][2])),
                         "perClass": {CLASSES[c]: int((sources[n][1] == c).sum()) for c in sorted(set(sources[n][1].tolist()))},
                         **({"scale": scales[n]} if n in scales else {})} for n in dirs},
            "sha256": sha256_of(crop_files),
            "cropsFrom": f"leuko segment --dataset DIR --out OUT --size N (largest leukocyte of each frame, {args.window:g} µm window at the frame's estimated scale)",
            "split": f"grouped (Kaggle by source photograph, others by image), "
                     + (f"fold {args.fold} of each class's groups for validation" if args.fold else f"{args.val_fraction:.0%} of each class's groups for validation")
                     + f", seed {args.seed}",
            "augmentations": "90-degree rotations, flips, shear +-0.2 and scale +-15%, brightness +-0.15, contrast +-20%, "
                             "haematoxylin/eosin stain jitter (x U(0.75,1.25), +-0.05 OD), white-balance cast +-10%, blur (1/3), noise (1/3)"
                             + (f"; Fourier amplitude mix (share {args.amplitude_mix:g}, band {args.amplitude_band:g})" if args.amplitude_mix > 0 else "")
                             + (f"; random convolutions (share {args.random_convolution:g})" if args.random_convolution > 0 else "")
                             + (f"; MixStyle after blocks 1-2 (p {args.mixstyle:g})" if args.mixstyle > 0 else ""),
            "epochs": args.epochs, "chosenEpoch": best_epoch, "batch": args.batch, "learningRate": args.lr,
            "drawsPerEpoch": draws, "weightAverageDecay": args.ema, "seed": args.seed,
            "device": str(device), "torch": torch.__version__, "threads": args.threads,
            "seconds": round(time.time() - started), "history": history},
        "validation": validation,
        "validationReview": review,
    }
    with open(os.path.join(args.out, args.name + ".json"), "w") as f:
        json.dump(card, f, indent=2)
    log(f"wrote {onnx_path} and its model card in {time.time() - started:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
