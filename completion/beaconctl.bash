# bash completion for beaconctl(8): commands, options, and target names
# asked from the running daemon (beaconctl targets -c).
_beaconctl()
{
	local cur prev words cword
	_init_completion 2>/dev/null || {
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD-1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	}
	local commands="status targets target watch reload stats history graph help"
	local i cmd="" sockopt=()
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-s|--socket|-c|--config)
			[[ -z $cmd ]] && sockopt+=("${words[i]}" "${words[i+1]}")
			((i++))
			[[ -n $cmd ]] && ((i--))
			;;
		-*) ;;
		*)
			if [[ -z $cmd ]]; then
				cmd=${words[i]}
			fi
			;;
		esac
	done
	if [[ -z $cmd ]]; then
		case $prev in
		-s|--socket|-c|--config)
			COMPREPLY=($(compgen -f -- "$cur"))
			return
			;;
		esac
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "-s --socket -c --config -h --help -V --version" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return
	fi
	case $cmd in
	targets|watch)
		local opts="--down --sort=name --sort=loss --sort=rtt -v --verbose"
		[[ $cmd == targets ]] && opts+=" -j --json -c --csv"
		[[ $cmd == watch ]] && opts+=" --count="
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		;;
	target|history|graph)
		if [[ $cur == -* ]]; then
			local opts="-j --json"
			[[ $cmd != target ]] && opts="--range --family"
			[[ $cmd == history ]] && opts+=" -j --json"
			COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		elif [[ $prev == --range ]]; then
			COMPREPLY=($(compgen -W "3h 30h 10d" -- "$cur"))
		elif [[ $prev == --family ]]; then
			COMPREPLY=($(compgen -W "4 6" -- "$cur"))
		else
			local names
			names=$(beaconctl "${sockopt[@]}" targets -c 2>/dev/null |
				awk -F, 'NR > 1 { print $2 }' | sort -u)
			COMPREPLY=($(compgen -W "$names" -- "$cur"))
		fi
		;;
	status|stats)
		COMPREPLY=($(compgen -W "-j --json" -- "$cur"))
		;;
	esac
}
complete -F _beaconctl beaconctl
