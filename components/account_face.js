// What the header's account button shows, as one element: the person's picture or initials, and the button's name
// for screen readers as text inside it (so the name contains what is seen). On every signed-in page view.
export default {
  template: `
    <span class="r-account-face">
      <span class="r-avatar"><img v-if="src" :src="src" alt=""><span v-else class="r-initials">{{ initials }}</span></span>
      <span class="r-sr-only">{{ name }}</span>
    </span>
  `,
  props: {
    src: String,
    initials: String,
    name: String,
  },
};
