"""Build er_fast._C: CPU kernels always, CUDA kernels when torch is a CUDA build and nvcc is found.
Everything else about the package (name, version, dependencies, entry point) is in pyproject.toml.

er_fast compiles against the torch already installed: `pip install --no-build-isolation .`
(build isolation would hide that torch, or fetch another one).

Switches (environment):
  FORCE_CUDA=1          build the CUDA kernels even if the toolkit check would skip them
  ER_FAST_FORCE_CPU=1   never build CUDA kernels
  ER_FAST_DEBUG=1       -O0 -g
  TORCH_CUDA_ARCH_LIST  defaults to "8.0;9.0" when no GPU is visible
"""
import glob
import os
import sys

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:
    sys.exit(
        "er_fast builds against the torch already installed, and none is visible to this build "
        "(pip's build isolation hides it). Install torch first, then: pip install --no-build-isolation ."
    )
from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name):
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def want_cuda():
    if _flag("ER_FAST_FORCE_CPU"):
        return False
    if _flag("FORCE_CUDA"):
        return True
    # A CUDA build of torch plus a toolkit is enough: no visible GPU needed to compile.
    return torch.version.cuda is not None and CUDA_HOME is not None


def extensions():
    debug = _flag("ER_FAST_DEBUG")
    sources = ["csrc/er_fast.cpp"] + sorted(glob.glob("csrc/cpu/*.cpp"))
    # torch's wheels ship libgomp.so.1, so -fopenmp here joins torch's OpenMP runtime
    # (the at::parallel_for in headers is a no-op without it). No -march: the binary runs on any
    # x86-64; the hot loops carry their own AVX-512 / AVX2 copies (csrc/common/cpu_dispatch.h).
    cxx = ["-O0", "-g"] if debug else ["-O3"]
    cxx += ["-std=c++20", "-fopenmp", "-DAT_PARALLEL_OPENMP", "-fno-math-errno"]
    link = ["-fopenmp"]
    include_dirs = [os.path.join(ROOT, "csrc")]
    if not want_cuda():
        return [CppExtension("er_fast._C", sources, include_dirs=include_dirs,
                             extra_compile_args={"cxx": cxx}, extra_link_args=link)]
    if not torch.cuda.is_available() and "TORCH_CUDA_ARCH_LIST" not in os.environ:
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0"
    sources += sorted(glob.glob("csrc/cuda/*.cu"))
    nvcc = ["-O3", "-std=c++20", "-lineinfo"] if not debug else ["-O0", "-g", "-G"]
    # CUDA builds of torch keep cusparse.h etc. under site-packages/nvidia/*/include.
    site = os.path.dirname(os.path.dirname(torch.__file__))
    include_dirs += sorted(glob.glob(os.path.join(site, "nvidia", "*", "include")))
    return [CUDAExtension("er_fast._C", sources, include_dirs=include_dirs,
                          define_macros=[("ER_FAST_WITH_CUDA", "1")],
                          extra_compile_args={"cxx": cxx, "nvcc": nvcc}, extra_link_args=link)]


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)})
