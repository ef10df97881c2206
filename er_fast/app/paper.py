"""The paper's Table 1 (Golikov & Kretov, section 4): ELBO mean ± std over an unstated number of runs."""

# model id -> (paper's row label, ELBO mean, ELBO std)
PAPER_TABLE1 = {
    "vae-gauss-1d": ("VAE, dim Z = 1", 183.98, 11.66),
    "er-learned-1d": ("Manifold-latent VAE with learned f, dim Z_hid = 1", 197.19, 20.46),
    "er-proj-1d": ("Manifold-latent VAE with f = f_proj, dim Z_hid = 1", 193.40, 24.57),
    "er-learned-group-1d": ("Manifold-latent VAE with learned f and group action encoder, dim Z_hid = 1", 259.03, 59.14),
    "vae-gauss-2d": ("VAE, dim Z = 2", 356.53, 22.96),
}
