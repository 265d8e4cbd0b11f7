from setuptools import find_packages, setup


def read_requirements(path):
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]


setup(
    name='mmtrs',
    version='0.1.0',
    description='Low-bit QAT with transition-rate scheduling for MMDetection 3.x',
    packages=find_packages(include=['mmtrs', 'mmtrs.*']),
    python_requires='>=3.9',
    install_requires=read_requirements('requirements.txt'),
    extras_require={'dev': read_requirements('requirements-dev.txt')},
)
