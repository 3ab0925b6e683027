# The steps of ayna-fab's pipeline, the way a Capistrano user writes them: git checkout (see Capfile),
# a per-release venv from the frozen lock, manage.py check, migrate, collectstatic, the symlink flip,
# a restart of every unit, then polling both health endpoints. A failure after the flip puts the
# release that was live back (Capistrano alone would leave the failed one serving).
set :application, "uavcrew"
set :deploy_to, "/opt/ayna/uavcrew"
set :releases_directory, "cap-releases"        # beside ayna-fab's releases/, never in it
set :current_directory, "releases/current"     # where the systemd units look
set :keep_releases, 5
set :linked_dirs, %w[media]
set :source_dir, ENV.fetch("CAP_SOURCE")
set :branch, ENV.fetch("BRANCH", "HEAD")
set :format_options, log_file: nil
# The same uv settings ayna-fab's install uses: the shared cache, hard links, the host's Python.
set :uv_env, { uv_cache_dir: "/opt/ayna/.uv-cache", uv_link_mode: "hardlink",
               uv_python_downloads: "never", uv_no_progress: "1" }

# The units as the standard has them, one per service, restarted through `current`: the blue slot's,
# whose link the comparison points at `current` itself on this host (run.py), so it always starts.
UNITS = %w[web-blue api-blue celery-blue beat].map { |s| "uavcrew-#{s}.service" }
HEALTH = { "web" => "http://127.0.0.1:8130/health/", "api" => "http://127.0.0.1:8131/health" }

namespace :app do
  task :link_env do
    on release_roles(:all) do
      execute :ln, "-s", shared_path.join(".env.production"), release_path.join(".env")
    end
  end

  # `uv sync --frozen` installs from the URLs recorded in uv.lock, which these offline hosts
  # cannot reach; exporting the lock and syncing it with hashes installs the same versions
  # from the host's own index (its wheelhouse), as ayna-fab does.
  task :install do
    on release_roles(:all) do
      within release_path do
        with fetch(:uv_env) do
          execute :uv, "export", "--quiet", "--frozen", "--no-dev", "--no-emit-project", "--no-header",
                  "-o", "requirements.txt"
          execute :uv, "venv", "--quiet", "--python", "/usr/bin/python3", ".venv"
          execute :uv, "pip", "sync", "--quiet", "--python", ".venv/bin/python", "--require-hashes", "requirements.txt"
        end
      end
    end
  end

  %w[check migrate collectstatic].each do |step|
    task step do
      args = { "check" => %w[check --deploy], "migrate" => %w[migrate --noinput],
               "collectstatic" => %w[collectstatic --noinput] }.fetch(step)
      on release_roles(:all) do
        within release_path.join("src/web") do
          execute release_path.join(".venv/bin/python"), "manage.py", *args
        end
      end
    end
  end

  task :remember_live do
    on release_roles(:all) do
      set :live_release, (capture(:readlink, "-f", current_path) if test("[ -L #{current_path} ]"))
    end
  end

  task :restart do
    on release_roles(:all) do
      UNITS.each { |unit| execute :sudo, "/usr/bin/systemctl", "restart", unit }
    end
  end

  # 2xx passes, a 5xx fails at once, no answer is retried every 0.2 s for 60 s.
  task :health do
    on release_roles(:all) do
      HEALTH.each do |name, url|
        execute "for i in $(seq 300); do c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 #{url}); " \
                "case $c in 2??) exit 0;; 5??) echo '#{name}: HTTP '$c >&2; exit 1;; esac; sleep 0.2; done; " \
                "echo '#{name}: no answer' >&2; exit 1"
      end
    end
  end

  task :put_back do
    on release_roles(:all) do
      live = fetch(:live_release)
      now = capture(:readlink, "-f", current_path) if test("[ -L #{current_path} ]")
      next if live.nil? || now == live
      tmp = releases_path.join("current.tmp")
      execute :ln, "-sfn", live, tmp
      execute :mv, "-T", tmp, current_path
      UNITS.each { |unit| execute :sudo, "/usr/bin/systemctl", "restart", unit }
    end
  end
end

after "deploy:symlink:shared", "app:link_env"
after "deploy:updated", "app:install"
after "app:install", "app:check"
after "app:check", "app:migrate"
after "app:migrate", "app:collectstatic"
before "deploy:publishing", "app:remember_live"
after "deploy:published", "app:restart"
after "app:restart", "app:health"
after "deploy:failed", "app:put_back"
