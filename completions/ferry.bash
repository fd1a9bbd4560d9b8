# bash completion for ferry(1): commands, options, and files or platforms
# where an option takes one. Installed by `make install` as
# $(PREFIX)/share/bash-completion/completions/ferry. tests/packaging.rs
# fails when `ferry --help` or a command's help lists an option or a
# command missing here.

_ferry()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="inspect tags catalog digest login logout pull unpack push copy
        delete help"
    local global="-v --verbose -vv -q --quiet --json --auth --username
        --password-stdin --password-many --authfile --ca-cert --tls-no-verify
        --plain-http --timeout --retries -h --help --version"
    local IFS=$' \t\n'

    case $prev in
        --unpack)
            compopt -o filenames 2>/dev/null
            local IFS=$'\n'
            COMPREPLY=($(compgen -d -- "$cur"))
            return
            ;;
        --authfile | --ca-cert)
            compopt -o filenames 2>/dev/null
            local IFS=$'\n'
            COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
        --arch)
            COMPREPLY=($(compgen -W "all amd64 arm64 386 ppc64le s390x riscv64
                linux/amd64 linux/arm64 linux/arm64/v8 linux/arm/v7 linux/arm/v6
                linux/386 linux/ppc64le linux/s390x linux/riscv64" -- "$cur"))
            return
            ;;
        --username | --timeout | --retries | --chunk-size)
            return
            ;;
    esac

    # The command is the first word that is neither an option nor the
    # value of one; global options may stand before or after it.
    local i word command=
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        case $word in
            --username | --authfile | --ca-cert | --timeout | --retries | --arch | \
                --chunk-size | --unpack)
                ((i++)) # its value follows
                ;;
            -*) ;;
            *)
                command=$word
                break
                ;;
        esac
    done

    local options=$global
    case $command in
        inspect) options="$global --raw --config --arch" ;;
        pull) options="$global --arch --verify --oci-types --unpack --force
            --preserve-owners" ;;
        unpack) options="$global --arch --force --preserve-owners" ;;
        push) options="$global --all --chunk-size --arch --docker-types" ;;
        copy) options="$global --arch --chunk-size" ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
    elif [[ -z $command || $command == help ]]; then
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    elif [[ $command == pull || $command == unpack || $command == push ]]; then
        # Images cannot be completed, but layout and root directories can.
        compopt -o filenames 2>/dev/null
        local IFS=$'\n'
        COMPREPLY=($(compgen -d -- "$cur"))
    fi
}

complete -F _ferry ferry
