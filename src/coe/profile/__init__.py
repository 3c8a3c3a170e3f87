"""The profile stage: record what a MoE model's routers do on a corpus."""

from coe.profile.artifact import FORMAT, ProfileMeta, RouterProfile, load_profile, merge_profiles, save_profile

__all__ = ["FORMAT", "ProfileMeta", "RouterProfile", "load_profile", "merge_profiles", "save_profile"]
