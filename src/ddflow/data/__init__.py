from ddflow.data.datasets import DataError, DatasetBundle, check_class_map, load_bundle, prepare

__all__ = ["DataError", "DatasetBundle", "check_class_map", "load_bundle", "prepare"]
