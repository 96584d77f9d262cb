# Sourced by start.sh and tests/run.sh: install ECharts and Swagger UI from the npm registry into
# deploy/npm/node_modules, which the Flask app serves at /static/vendor/echarts/ and
# /static/vendor/swagger-ui/ (pages never load them from a CDN).
# Re-installs only when echarts.min.js is missing or package-lock.json changed since the last install.

ensure_echarts() {
    root=$1
    npm_dir="$root/deploy/npm"
    dist="$npm_dir/node_modules/echarts/dist/echarts.min.js"
    docs="$npm_dir/node_modules/swagger-ui-dist/swagger-ui-bundle.js"
    stamp="$npm_dir/node_modules/.package-lock.sha256"
    want=$(sha256sum "$npm_dir/package-lock.json" | cut -d' ' -f1) || return 1
    if [ -f "$dist" ] && [ -f "$docs" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "error: cannot install ECharts for the trend charts: npm was not found." >&2
        echo "       Install Node.js and npm (Debian/Ubuntu: apt-get install nodejs npm), then run this again." >&2
        return 1
    fi
    echo "installing ECharts and Swagger UI from the npm registry into $npm_dir/node_modules"
    # --ignore-scripts: only static files are used, and swagger-ui-dist's dependency
    # @scarf/scarf would otherwise send install analytics.
    if ! npm ci --prefix "$npm_dir" --no-audit --no-fund --loglevel=error --ignore-scripts; then
        echo "error: 'npm ci' could not install ECharts (see npm's message above)." >&2
        echo "       Is the npm registry reachable ($(npm config get registry 2>/dev/null))? Behind a proxy," >&2
        echo "       set it with 'npm config set proxy URL'. Charts are drawn, but pages show no chart until this succeeds." >&2
        return 1
    fi
    if [ ! -f "$dist" ] || [ ! -f "$docs" ]; then
        echo "error: npm finished but $dist or $docs is missing; delete $npm_dir/node_modules and try again." >&2
        return 1
    fi
    echo "$want" > "$stamp"
}
