"""Test-wide environment: no network calls, no W&B sync, dataset caches in a temp folder."""

import os
import tempfile

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("SDAANET_CACHE", tempfile.mkdtemp(prefix="sdaanet-cache-"))
