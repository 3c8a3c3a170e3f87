"""llama.cpp in-process (``coe[llamacpp]``): GGUF-native profiling, ``coe verify``, generation.

Everything here imports llama-cpp-python lazily, so coe itself works without it.
"""
