// A row of plain links (and, optionally, buttons that report back) as one element: the header's navigation and the
// footer's links are on every page, and an element per link would cost the server on every page view.
export default {
  template: `
    <nav :aria-label="label || undefined">
      <template v-for="link in links" :key="link.label">
        <q-btn v-if="link.action" flat dense no-caps :label="link.label" :class="link.classes"
               @click="$emit('action', { action: link.action })" />
        <a v-else :href="link.href" :class="['nicegui-link', link.classes]"
           :aria-current="link.current ? 'page' : undefined">{{ link.label }}</a>
      </template>
    </nav>
  `,
  props: {
    links: { type: Array, default: () => [] },
    label: String,
  },
};
