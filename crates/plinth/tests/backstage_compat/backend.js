// Backstage's catalog backend and nothing else, configured by app-config.yaml
// in the working directory (written by the test).
const { createBackend } = require('@backstage/backend-defaults');

const backend = createBackend();
backend.add(require('@backstage/plugin-catalog-backend'));
backend.start();
