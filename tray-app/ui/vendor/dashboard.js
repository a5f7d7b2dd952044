document.getElementById('app').textContent = 'The dashboard bundle is not built: run `npm ci && node build.mjs` in extension/, then rebuild the tray app.';
