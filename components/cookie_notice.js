// The essential-cookies notice as one element: it is on every page a newcomer opens (crawlers included), and an
// element per line, link and button cost the server on each of those page views. Acknowledging reports back.
export default {
  template: `
    <section class="r-cookie-notice" role="region" aria-label="Cookie notice">
      <div class="r-cookie-body">
        <div class="r-cookie-title">{{ title }}</div>
        <div class="r-cookie-text">{{ text }} <a class="nicegui-link" :href="policyHref">Cookie Policy</a></div>
        <q-toggle v-if="offerAnalytics" v-model="analytics" :label="analyticsLabel"
                  aria-label="Allow cookie-less usage statistics" />
      </div>
      <q-btn unelevated no-caps color="primary" class="r-cookie-ok" :label="okLabel"
             @click="$emit('acknowledge', { analytics: offerAnalytics ? analytics : true })" />
    </section>
  `,
  props: {
    title: String,
    text: String,
    policyHref: String,
    offerAnalytics: Boolean,
    analyticsLabel: String,
    okLabel: String,
  },
  data() {
    return { analytics: true };
  },
};
