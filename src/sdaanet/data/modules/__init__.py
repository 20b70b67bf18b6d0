"""One LightningDataModule per dataset (``data=<name>`` in Hydra; the list:
``sdaanet.data.registry``). Each only says which files make a split and which classes each split
targets; episodes, transforms and loaders are shared (``EpisodicDataModule``). The data configs'
``_target_`` names the classes here (``sdaanet.data.modules.<Class>``), as do the checkpoints
that recorded them.
"""

from sdaanet.data.modules.benchmarks import (
    CocoDataModule,
    FSS1000DataModule,
    PascalDataModule,
    SyntheticDataModule,
)
from sdaanet.data.modules.cross_domain import (
    ChestXrayDataModule,
    ClassCycleEpisodes,
    DeepglobeDataModule,
    FSS1000PatnetDataModule,
    ISICDataModule,
    SupportPoolEpisodes,
)
from sdaanet.data.modules.folder import FolderDataModule, MSRCDataModule

__all__ = [
    "ChestXrayDataModule",
    "ClassCycleEpisodes",
    "CocoDataModule",
    "DeepglobeDataModule",
    "FSS1000DataModule",
    "FSS1000PatnetDataModule",
    "FolderDataModule",
    "ISICDataModule",
    "MSRCDataModule",
    "PascalDataModule",
    "SupportPoolEpisodes",
    "SyntheticDataModule",
]
