# One sandbox host, given by run.py: its forwarded SSH port, the deploy user, the sandbox's key and
# known_hosts (host keys checked strictly, as ayna-fab does).
server "127.0.0.1", port: Integer(ENV.fetch("CAP_PORT")), user: ENV.fetch("CAP_USER", "adonis"), roles: %w[app web db]
set :ssh_options, { keys: [ENV.fetch("CAP_KEY")], keys_only: true, auth_methods: %w[publickey],
                    user_known_hosts_file: ENV.fetch("CAP_KNOWN_HOSTS"), verify_host_key: :always }
