"""Dataset adapters: `list_videos(root, **options) -> list[VideoInput]`, one module each."""

from cwm.ingest.sources import folder, human36m, sim, ssv2, synthetic, ytb_driving

ADAPTERS = {
    "ssv2": ssv2.list_videos,
    "human36m": human36m.list_videos,
    "ytb-driving": ytb_driving.list_videos,
    "folder": folder.list_videos,
    "synthetic": synthetic.list_videos,
    "sim": sim.list_videos,
}
