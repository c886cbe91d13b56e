"""Offline stand-in for the pip bootstrap script ansible-test downloads.

ansible-test creates an empty virtual environment for each sanity test and bootstraps pip in it
by running a "get-pip" script that it downloads from a host this project's machines cannot
reach. It caches that script as ~/.ansible/test/cache/get_pip_<version>.py and uses the cached
copy when present; scripts/bootstrap.sh installs this file there under that name.

ansible-test runs the script through its pip wrapper with arguments such as
    --disable-pip-version-check pip==24.2 --no-setuptools --no-wheel
This stand-in does the same job with the interpreter's bundled pip:
  1. python -m ensurepip        (bundled wheel, no network)
  2. python -m pip install <the requested packages>   (from the package index, as configured)
  3. removes setuptools again when --no-setuptools was asked and ensurepip added it.
The environment is passed through unchanged so pip's own configuration (index, CA bundle) applies.
"""

import importlib.util
import os
import subprocess
import sys

DROP = ('--no-setuptools', '--no-wheel')


def run(*args):
    env = dict(os.environ)
    env.pop('GET_PIP', None)  # this variable makes ansible-test's wrapper run us instead of pip
    subprocess.check_call([sys.executable] + list(args), env=env)


def main():
    args = sys.argv[1:]
    had_setuptools = importlib.util.find_spec('setuptools') is not None

    run('-m', 'ensurepip', '--upgrade')
    run('-m', 'pip', 'install', *[arg for arg in args if arg not in DROP])

    if '--no-setuptools' in args and not had_setuptools:
        run('-m', 'pip', 'uninstall', '--yes', '--quiet', 'setuptools')


if __name__ == '__main__':
    try:
        main()
    except subprocess.CalledProcessError as ex:
        sys.stderr.write('pip bootstrap stand-in failed: %s\n' % ex)
        sys.exit(ex.returncode or 1)
