/*
 * Stand-in for joxit/docker-registry-ui 2.5.7's browser app (live tests), plain JavaScript, no build.
 * It reads the <docker-registry-ui> attributes the entrypoint filled in and talks to the registry the way
 * the app does:
 *  - registry URL: registry-url, else (only when single-registry is not "true") the ?url= parameter or the
 *    first saved server, else this page's origin + path without trailing slashes ("index.html" dropped);
 *  - catalog: GET <url>/v2/_catalog?n=<catalog-elements-limit, 1000>; tags: GET <url>/v2/<repo>/tags/list;
 *  - delete (only when is-image-remove-activated is "true"): GET <url>/v2/<repo>/manifests/<tag> with the
 *    manifest Accept types, read Docker-Content-Digest (else the SHA-256 of the body), then
 *    DELETE <url>/v2/<repo>/manifests/<digest>;
 *  - credentials: sent up front when is-registry-secured is "true", else a 401 is retried with them.
 * window.registryUi.listTags(repo) and window.registryUi.deleteTag(repo, tag) are for browser tests.
 */
(function () {
  'use strict';

  var element = document.querySelector('docker-registry-ui');
  var MANIFEST_TYPES = [
    'application/vnd.docker.distribution.manifest.v2+json',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.oci.image.index.v1+json',
  ].join(', ');
  var DELETE_ACCEPT = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';

  function attribute(name) {
    return element.getAttribute(name) || '';
  }
  function truthy(value) {
    return value === true || value === 'true';
  }
  function stripHttps(url) {
    return (url || '').replace(/^https?:\/\//, '');
  }
  function savedServer() {
    try {
      var servers = JSON.parse(localStorage.getItem('registryServer') || '[]');
      return Array.isArray(servers) && servers.length > 0 ? servers[0] : '';
    } catch (e) {
      return '';
    }
  }

  var singleRegistry = attribute('single-registry');
  var registryUrl =
    attribute('registry-url') ||
    (singleRegistry === 'true' ? '' : new URLSearchParams(location.search).get('url') || savedServer()) ||
    location.origin + location.pathname.replace(/\/+$/, '');
  registryUrl = registryUrl.replace(/\/$/, '').replace(/index(\.html?)?$/, '');

  var settings = {
    registryUrl: registryUrl,
    name: attribute('name') || stripHttps(attribute('registry-url')),
    pullUrl: stripHttps(attribute('pull-url') || registryUrl || location.host),
    singleRegistry: singleRegistry,
    catalogElementsLimit: attribute('catalog-elements-limit') || 1000,
    deleteImages: truthy(attribute('is-image-remove-activated')),
    showContentDigest: truthy(attribute('show-content-digest')),
    registrySecured: truthy(attribute('is-registry-secured')),
    attributes: {},
  };
  Array.prototype.forEach.call(element.attributes, function (a) {
    settings.attributes[a.name] = a.value;
  });

  // One request; a 401 without credentials is retried with them (Joxit's Http wrapper).
  function request(method, url, headers) {
    var init = { method: method, headers: headers || {}, credentials: settings.registrySecured ? 'include' : 'same-origin' };
    return fetch(url, init).then(function (response) {
      if (response.status === 401 && init.credentials !== 'include') {
        init.credentials = 'include';
        return fetch(url, init);
      }
      return response;
    });
  }

  function sha256(text) {
    return crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)).then(function (buffer) {
      return 'sha256:' + Array.from(new Uint8Array(buffer)).map(function (b) {
        return b.toString(16).padStart(2, '0');
      }).join('');
    });
  }

  function fill(list, items) {
    list.textContent = '';
    items.forEach(function (item) {
      var li = document.createElement('li');
      li.textContent = item;
      list.appendChild(li);
    });
  }

  function listCatalog() {
    var url = registryUrl + '/v2/_catalog?n=' + settings.catalogElementsLimit;
    return request('GET', url).then(function (response) {
      if (response.status !== 200) {
        throw new Error('GET ' + url + ': ' + response.status);
      }
      return response.json();
    }).then(function (body) {
      var repositories = (body.repositories || []).slice().sort();
      fill(document.getElementById('repositories'), repositories);
      return repositories;
    });
  }

  function listTags(repo) {
    var url = registryUrl + '/v2/' + repo + '/tags/list';
    return request('GET', url).then(function (response) {
      if (response.status !== 200) {
        throw new Error('GET ' + url + ': ' + response.status);
      }
      return response.json();
    }).then(function (body) {
      var tags = body.tags || [];
      fill(document.getElementById('tags'), tags.map(function (tag) { return repo + ':' + tag; }));
      return tags;
    });
  }

  function deleteTag(repo, tag) {
    if (!settings.deleteImages) {
      return Promise.reject(new Error('deleting is off (is-image-remove-activated is not "true")'));
    }
    var manifestUrl = registryUrl + '/v2/' + repo + '/manifests/' + tag;
    return request('GET', manifestUrl, { Accept: MANIFEST_TYPES }).then(function (response) {
      if (response.status !== 200 && response.status !== 202) {
        throw new Error('GET ' + manifestUrl + ': ' + response.status);
      }
      var digest = response.headers.get('Docker-Content-Digest');
      return digest ? digest : response.text().then(sha256);
    }).then(function (digest) {
      var url = registryUrl + '/v2/' + repo + '/manifests/' + digest;
      return request('DELETE', url, { Accept: DELETE_ACCEPT }).then(function (response) {
        return { status: response.status, digest: digest, url: url };
      });
    });
  }

  document.title = settings.name || 'Docker Registry UI';
  document.getElementById('title').textContent = settings.name || 'Docker Registry UI';
  document.getElementById('settings').textContent = JSON.stringify(settings, null, 2);
  var status = document.getElementById('status');
  window.registryUi = { settings: settings, listCatalog: listCatalog, listTags: listTags, deleteTag: deleteTag };
  window.registryUi.ready = listCatalog().then(function (repositories) {
    status.textContent = 'catalog: ' + repositories.length + ' repositories';
  }, function (error) {
    status.textContent = 'catalog failed: ' + error.message;
  });
})();
