#!/bin/sh
# Tab completion of `swarmboot` for bash and zsh (argcomplete), installed by `make setup`.
# Usage: scripts/install-completion.sh VENV [BASH_DIR] [ZSH_DIR]
#   bash: BASH_DIR/swarmboot (default /etc/bash_completion.d, read by bash-completion)
#   zsh:  ZSH_DIR/_swarmboot (default /usr/local/share/zsh/site-functions, on zsh's fpath)
# The completion runs the `swarmboot` found on PATH (e.g. after `. .venv/bin/activate`).
set -eu
venv=${1:?usage: install-completion.sh VENV [BASH_DIR] [ZSH_DIR]}
bash_dir=${2:-/etc/bash_completion.d}
zsh_dir=${3:-/usr/local/share/zsh/site-functions}
register="$venv/bin/register-python-argcomplete"
if ! mkdir -p "$bash_dir" "$zsh_dir" 2>/dev/null || [ ! -w "$bash_dir" ] || [ ! -w "$zsh_dir" ]; then
    echo "install-completion: cannot write $bash_dir or $zsh_dir (run as root); skipped" >&2
    exit 0
fi
"$register" --shell bash swarmboot > "$bash_dir/swarmboot.tmp" && mv "$bash_dir/swarmboot.tmp" "$bash_dir/swarmboot"
"$register" --shell zsh swarmboot > "$zsh_dir/_swarmboot.tmp" && mv "$zsh_dir/_swarmboot.tmp" "$zsh_dir/_swarmboot"
echo "install-completion: $bash_dir/swarmboot, $zsh_dir/_swarmboot"
