"""Writing results: params, meshes, landmarks, figures, metrics; all atomically."""
